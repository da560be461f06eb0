package enterprise

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// servedSerial does one TLS handshake with addr (trusting ca) and returns
// the serial number of the certificate served, or "" if the handshake failed.
func servedSerial(ca *testca.CA, addr string) string {
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12})
	if err != nil {
		return ""
	}
	defer func() { _ = conn.Close() }()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// startServe runs `pbench-auth serve ARGS... --listen 127.0.0.1:0` (the
// real command tree, in this process) until the test ends, and returns the
// address it listens on, read from its "listening on" line: the port is
// chosen by the kernel and never free for another process to take.
func startServe(t *testing.T, args ...string) (addr string, stderr *testutil.SyncBuffer) {
	t.Helper()
	ios, _, _, _ := cmdutil.Test()
	stderr = &testutil.SyncBuffer{}
	ios.ErrOut = stderr
	f := cmdutil.New()
	f.IO = ios
	f.Getenv = func(k string) string { return map[string]string{"GOMEMLIMIT": "off"}[k] }
	cmd := root.NewCmd(f)
	cmd.SetArgs(append(append([]string{"serve"}, args...), "--listen", "127.0.0.1:0"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, stderr.String())
		}
	})
	listening := regexp.MustCompile(`listening on https?://(127\.0\.0\.1:[0-9]+),`)
	waitFor(t, "serve to listen", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve ended before listening: %v\n%s", err, stderr.String())
		default:
		}
		m := listening.FindStringSubmatch(stderr.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	}, stderr)
	return addr, stderr
}

// TestServeDevOverTLSReloadsItsCertificate runs `serve --dev` over HTTPS
// with a certificate of the internal CA, calls it with the CLI, replaces the
// certificate files, and sees the next handshakes serve the new one.
func TestServeDevOverTLSReloadsItsCertificate(t *testing.T) {
	ca := testca.New(t, "Pbench Test Internal CA")
	dir := t.TempDir()
	caFile := testca.WriteFile(t, dir, "ca.pem", ca.PEM)
	first := ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}})
	certFile := testca.WriteFile(t, dir, "tls.crt", first.CertPEM)
	keyFile := testca.WriteFile(t, dir, "tls.key", first.KeyPEM)
	addr, stderr := startServe(t, "--dev", "--tls-cert", certFile, "--tls-key", keyFile)

	want := first.TLS.Leaf.SerialNumber.String()
	waitFor(t, "serve to answer over TLS", func() bool { return servedSerial(ca, addr) == want }, stderr)

	e := &env{stateDir: t.TempDir(), configDir: t.TempDir()}
	server := "https://" + addr
	call := func() result {
		return e.cli(t, cliOptions{}, "call", "--anonymous", "--server", server, "--ca-cert", caFile, "/api/v1/endpoints")
	}
	if r := call(); r.code != 0 || !strings.Contains(r.stdout, `"issuer":"https://`+addr+`/realms/`) {
		t.Fatalf("call: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Rotate: write the new pair next to the files, then rename over them
	// (as cert-manager and certbot do).
	second := ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}})
	for file, b := range map[string][]byte{keyFile: second.KeyPEM, certFile: second.CertPEM} {
		tmp := testca.WriteFile(t, dir, filepath.Base(file)+".new", b)
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	want = second.TLS.Leaf.SerialNumber.String()
	waitFor(t, "the rotated certificate to be served", func() bool { return servedSerial(ca, addr) == want }, stderr)
	if !strings.Contains(stderr.String(), "reloaded the TLS certificate") {
		t.Errorf("the reload was not logged:\n%s", stderr.String())
	}
	if r := call(); r.code != 0 {
		t.Fatalf("call after the rotation: exit %d\n%s", r.code, r.stderr)
	}
}

// waitFor polls cond (a condition another goroutine or process brings
// about) for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool, log *testutil.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s\n%s", what, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeDevOverTLSPrivateCA is `serve --dev --tls-cert --tls-key` with a
// certificate of a private CA that serve itself is not told to trust (no
// --ca-cert): it must still load its own broker's keys (it fetches them
// in-process), be ready, and serve a whole login and call by the CLI, which
// trusts the CA with --ca-cert.
func TestServeDevOverTLSPrivateCA(t *testing.T) {
	ca := testca.New(t, "Pbench Test Private CA")
	dir := t.TempDir()
	leaf := ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}})
	addr, stderr := startServe(t, "--dev", "--dev-user", user+":"+password+":ADMIN",
		"--tls-cert", testca.WriteFile(t, dir, "tls.crt", leaf.CertPEM), "--tls-key", testca.WriteFile(t, dir, "tls.key", leaf.KeyPEM))
	e := &env{ca: ca, caFile: testca.WriteFile(t, dir, "ca.pem", ca.PEM), url: "https://" + addr,
		stateDir: t.TempDir(), configDir: t.TempDir()}

	// Ready: the keys are loaded, with nothing but the serving certificate.
	hc := e.browserClient("")
	waitFor(t, "/readyz to answer 200", func() bool {
		resp, err := hc.Get(e.url + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, stderr)
	if log := stderr.String(); strings.Contains(log, "cannot refresh the broker's signing keys") || strings.Contains(log, "x509") {
		t.Errorf("serve failed to fetch its own broker's keys:\n%s", log)
	}

	r := e.cli(t, cliOptions{browser: e.browser(t, "")}, "login", "--server", e.url, "--ca-cert", e.caFile)
	if r.code != 0 || !strings.Contains(r.stderr, "Logged in to "+e.url+" as "+user) {
		t.Fatalf("login with --ca-cert: exit %d\n%s", r.code, r.stderr)
	}
	r = e.cli(t, cliOptions{}, "call", "--server", e.url, "--ca-cert", e.caFile, "/api/v1/user")
	var id struct {
		Username string   `json:"username"`
		Roles    []string `json:"roles"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &id) != nil || id.Username != user || !slices.Contains(id.Roles, "ADMIN") {
		t.Fatalf("call /api/v1/user: exit %d, stdout %q\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestServeCheckCoversIntrospection: `serve --check` reports the
// introspection flags' problems, and never the secret.
func TestServeCheckCoversIntrospection(t *testing.T) {
	dir := t.TempDir()
	secret := testca.WriteFile(t, dir, "secret", []byte("hunter2-secret\n"))
	e := &env{stateDir: t.TempDir(), configDir: t.TempDir()}
	base := []string{"serve", "--check", "--issuer", "https://sso.example.com/realms/pbench"}
	for _, tc := range []struct {
		name string
		args []string
		want string // "" = OK
	}{
		{"ok", []string{"--introspection-client-id", "pbench-server", "--introspection-client-secret-file", secret, "--introspect-all"}, ""},
		{"no secret file", []string{"--introspection-client-id", "pbench-server"}, "needs introspection-client-id and introspection-client-secret-file"},
		{"unreadable secret", []string{"--introspection-client-id", "pbench-server", "--introspection-client-secret-file", filepath.Join(dir, "nope")}, "introspection-client-secret-file"},
		{"http endpoint", []string{"--introspection-client-id", "pbench-server", "--introspection-client-secret-file", secret,
			"--introspection-endpoint", "http://sso.example.com/introspect"}, "must use https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.cli(t, cliOptions{}, append(base, tc.args...)...)
			switch {
			case tc.want == "" && (r.code != 0 || !strings.Contains(r.stderr, "configuration OK")):
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			case tc.want != "" && (r.code != cmdutil.ExitUsage || !strings.Contains(r.stderr, "problem: ") || !strings.Contains(r.stderr, tc.want)):
				t.Fatalf("exit %d, want %d with a problem saying %q\n%s", r.code, cmdutil.ExitUsage, tc.want, r.stderr)
			}
			if strings.Contains(r.stderr, "hunter2") {
				t.Error("the secret is on stderr")
			}
		})
	}
}
