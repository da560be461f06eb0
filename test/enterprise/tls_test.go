package enterprise

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// TestInternalCA: login and call against a broker and server signed by an
// internal CA work with --ca-cert (and with $PBENCH_AUTH_CA_CERT, and with the
// profile's ca-cert), and fail without it with a message naming the host
// and the flag.
func TestInternalCA(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.waitReady(t)
	host := strings.TrimPrefix(e.url, "https://")

	// Without the CA: refused, saying which host, what, and which flag.
	r := e.cli(t, cliOptions{browser: e.browser(t, "")}, "login", "--server", e.url)
	if r.code != cmdutil.ExitNetwork {
		t.Errorf("login without the CA: exit %d, want %d\n%s", r.code, cmdutil.ExitNetwork, r.stderr)
	}
	for _, want := range []string{"TLS connection to " + host + " failed", "unknown authority", "--ca-cert FILE"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("login without the CA: stderr lacks %q:\n%s", want, r.stderr)
		}
	}

	r = e.cli(t, cliOptions{browser: e.browser(t, "")}, "login", "--server", e.url, "--ca-cert", e.caFile)
	if r.code != 0 || !strings.Contains(r.stderr, "Logged in to "+e.url+" as "+user) {
		t.Fatalf("login with --ca-cert: exit %d\n%s", r.code, r.stderr)
	}
	checkUser := func(name string, r result) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\n%s", name, r.code, r.stderr)
		}
		var id struct {
			Username string   `json:"username"`
			Roles    []string `json:"roles"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &id); err != nil || id.Username != user {
			t.Fatalf("%s: stdout %q (%v), want alice's identity", name, r.stdout, err)
		}
	}
	checkUser("call with --ca-cert", e.cli(t, cliOptions{}, "call", "--server", e.url, "--ca-cert", e.caFile, "/api/v1/user"))
	checkUser("call with $PBENCH_AUTH_CA_CERT", e.cli(t, cliOptions{env: map[string]string{cmdutil.CACertEnv: e.caFile}}, "call", "--server", e.url, "/api/v1/user"))

	r = e.cli(t, cliOptions{}, "call", "--server", e.url, "/api/v1/user")
	if r.code != cmdutil.ExitNetwork || !strings.Contains(r.stderr, "--ca-cert FILE") || !strings.Contains(r.stderr, host) {
		t.Errorf("call without the CA: exit %d, want %d and the flag named\n%s", r.code, cmdutil.ExitNetwork, r.stderr)
	}

	// The profile's ca-cert in the config file.
	testca.WriteFile(t, mkdir(t, e.configDir, "pbench-auth"), "config.yaml",
		[]byte("profiles:\n  "+e.url+":\n    ca-cert: ["+e.caFile+"]\n"))
	checkUser("call with the profile's ca-cert", e.cli(t, cliOptions{}, "call", "--server", e.url, "/api/v1/user"))

	// logout revokes at the broker with the profile's CA too.
	r = e.cli(t, cliOptions{}, "logout", "--server", e.url)
	if r.code != 0 || strings.Contains(r.stderr, "TLS connection") {
		t.Errorf("logout with the profile's ca-cert: exit %d\n%s", r.code, r.stderr)
	}

	// doctor reports where the CAs come from.
	r = e.cli(t, cliOptions{}, "doctor", "--server", e.url, "--ca-cert", e.caFile)
	if !strings.Contains(r.stdout+r.stderr, "1 certificates from --ca-cert ("+e.caFile+")") {
		t.Errorf("doctor does not report --ca-cert:\n%s%s", r.stdout, r.stderr)
	}
}

// TestCertificateProblemsHaveTheirOwnMessages: an expired certificate and one
// for another name are told apart from an unknown CA, even with --ca-cert.
func TestCertificateProblemsHaveTheirOwnMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		leaf func(ca *testca.CA, host string) *testca.Leaf
		want []string
	}{
		{"expired", func(ca *testca.CA, host string) *testca.Leaf {
			return ca.Issue(t, testca.Options{Hosts: []string{host}, NotAfter: time.Now().Add(-time.Hour)})
		}, []string{"has expired or is not valid yet", "renew the certificate"}},
		{"wrong name", func(ca *testca.CA, _ string) *testca.Leaf {
			return ca.Issue(t, testca.Options{Hosts: []string{"pbench.example.com"}})
		}, []string{`not valid for the name "127.0.0.1"`, "it is for pbench.example.com"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{leaf: tc.leaf})
			r := e.cli(t, cliOptions{}, "call", "--anonymous", "--server", e.url, "--ca-cert", e.caFile, "/api/v1/endpoints")
			if r.code != cmdutil.ExitNetwork {
				t.Errorf("exit %d, want %d", r.code, cmdutil.ExitNetwork)
			}
			want := append([]string{"TLS connection to " + strings.TrimPrefix(e.url, "https://") + " failed"}, tc.want...)
			for _, w := range want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "unknown authority") {
				t.Errorf("reported as an unknown authority:\n%s", r.stderr)
			}
		})
	}
}

// TestInsecureSkipTLSVerify works without the CA, warns on every use, and
// is refused with --ca-cert.
func TestInsecureSkipTLSVerify(t *testing.T) {
	e := newEnv(t, envOptions{})
	for range 2 {
		r := e.cli(t, cliOptions{}, "call", "--anonymous", "--server", e.url, "--insecure-skip-tls-verify", "/api/v1/endpoints")
		if r.code != 0 || !strings.Contains(r.stdout, e.issuer) {
			t.Fatalf("insecure call: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "warning: --insecure-skip-tls-verify") {
			t.Fatalf("no warning on stderr:\n%s", r.stderr)
		}
	}
	r := e.cli(t, cliOptions{}, "call", "--anonymous", "--server", e.url, "--insecure-skip-tls-verify", "--ca-cert", e.caFile, "/api/v1/endpoints")
	if r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "cannot be used with --ca-cert") {
		t.Fatalf("insecure with --ca-cert: exit %d, want %d\n%s", r.code, cmdutil.ExitUsage, r.stderr)
	}
}
