package cmdutil

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
)

// newTestFactory is New's wiring with test streams and environment.
func newTestFactory(env map[string]string) (*Factory, *bytes.Buffer) {
	ios, _, _, errOut := Test()
	f := &Factory{IO: ios, Now: time.Now, Getenv: func(k string) string { return env[k] }}
	f.HTTPClient = f.HTTPClients()
	return f, errOut
}

// tlsServer serves 200 over TLS with leaf.
func tlsServer(t *testing.T, leaf *testca.Leaf) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{leaf.TLS}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(f *Factory, profile, u string) error {
	hc, err := f.HTTPClient(profile)
	if err != nil {
		return err
	}
	resp, err := hc.Get(u)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func TestCACertSources(t *testing.T) {
	ca := testca.New(t, "Test Internal CA")
	srv := tlsServer(t, ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}}))
	dir := t.TempDir()
	caFile := testca.WriteFile(t, dir, "ca.pem", ca.PEM)
	otherCA := testca.WriteFile(t, dir, "other.pem", testca.New(t, "Other CA").PEM)
	cfgDir := t.TempDir()
	profile := "https://pbench.example.com"
	cfg := "profiles:\n  " + profile + ":\n    ca-cert: [" + caFile + "]\n"
	if err := os.MkdirAll(filepath.Join(cfgDir, "pbench-auth"), 0o700); err != nil {
		t.Fatal(err)
	}
	testca.WriteFile(t, filepath.Join(cfgDir, "pbench-auth"), "config.yaml", []byte(cfg))

	for _, tc := range []struct {
		name    string
		env     map[string]string
		flags   []string
		server  string // resolved before the client is built
		trusted bool
	}{
		{name: "none", trusted: false},
		{name: "flag", flags: []string{caFile}, trusted: true},
		{name: "flag, second file", flags: []string{otherCA, caFile}, trusted: true},
		{name: "env path list", env: map[string]string{CACertEnv: otherCA + string(filepath.ListSeparator) + caFile}, trusted: true},
		{name: "flag wins over env", env: map[string]string{CACertEnv: caFile}, flags: []string{otherCA}, trusted: false},
		{name: "profile", server: profile, trusted: true},
		{name: "other profile", server: "https://elsewhere.example.com", trusted: false},
		{name: "env wins over profile", env: map[string]string{CACertEnv: otherCA}, server: profile, trusted: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"XDG_CONFIG_HOME": cfgDir}
			for k, v := range tc.env {
				env[k] = v
			}
			f, _ := newTestFactory(env)
			f.TLS.CACerts = tc.flags
			profile := ""
			if tc.server != "" {
				var err error
				if profile, err = f.Server(tc.server); err != nil {
					t.Fatal(err)
				}
			}
			err := get(f, profile, srv.URL)
			var te *TLSError
			switch {
			case tc.trusted && err != nil:
				t.Fatalf("GET with the CA: %v", err)
			case !tc.trusted && !errors.As(err, &te):
				t.Fatalf("GET without the CA: %v, want a TLSError", err)
			}
		})
	}
}

func TestTLSErrorsSayHostProblemAndFix(t *testing.T) {
	ca := testca.New(t, "Test Internal CA")
	caFile := testca.WriteFile(t, t.TempDir(), "ca.pem", ca.PEM)
	for _, tc := range []struct {
		name    string
		leaf    *testca.Leaf
		withCA  bool
		problem string
		fix     string
	}{
		{"unknown authority", ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}}), false,
			`signed by an unknown authority (issuer "CN=Test Internal CA,O=pbench-auth tests")`, "--ca-cert FILE"},
		{"wrong name", ca.Issue(t, testca.Options{Hosts: []string{"other.test"}}), true,
			`not valid for the name "127.0.0.1" (it is for other.test)`, "use the host name the certificate was issued for"},
		{"expired", ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}, NotAfter: time.Now().Add(-time.Hour)}), true,
			"has expired or is not valid yet", "must renew the certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tlsServer(t, tc.leaf)
			f, _ := newTestFactory(nil)
			if tc.withCA {
				f.TLS.CACerts = []string{caFile}
			}
			err := get(f, "", srv.URL)
			var te *TLSError
			if !errors.As(err, &te) {
				t.Fatalf("error %v, want a TLSError", err)
			}
			host := strings.TrimPrefix(srv.URL, "https://")
			msg := err.Error()
			for _, want := range []string{"TLS connection to " + host + " failed", tc.problem, tc.fix} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q:\n%s", want, msg)
				}
			}
		})
	}
}

func TestInsecureSkipTLSVerify(t *testing.T) {
	ca := testca.New(t, "Test Internal CA")
	srv := tlsServer(t, ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}}))
	caFile := testca.WriteFile(t, t.TempDir(), "ca.pem", ca.PEM)

	f, errOut := newTestFactory(nil)
	f.TLS.InsecureSkipTLSVerify = true
	if err := get(f, "", srv.URL); err != nil {
		t.Fatalf("insecure GET: %v", err)
	}
	if !strings.Contains(errOut.String(), "warning: --insecure-skip-tls-verify") {
		t.Errorf("no warning on stderr: %q", errOut.String())
	}

	for name, env := range map[string]map[string]string{
		"--ca-cert":     nil,
		"$" + CACertEnv: {CACertEnv: caFile},
	} {
		f, _ := newTestFactory(env)
		f.TLS.InsecureSkipTLSVerify = true
		if env == nil {
			f.TLS.CACerts = []string{caFile}
		}
		_, err := f.HTTPClient("")
		if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), "cannot be used with "+name) {
			t.Errorf("insecure with %s: %v (exit %d), want a usage error", name, err, ExitCode(err))
		}
	}
}

func TestBadCAFiles(t *testing.T) {
	dir := t.TempDir()
	notPEM := testca.WriteFile(t, dir, "not.pem", []byte("hello"))
	for name, tc := range map[string]struct{ file, want string }{
		"missing": {filepath.Join(dir, "nope.pem"), "--ca-cert: cannot read the CA file"},
		"not PEM": {notPEM, "holds no PEM CERTIFICATE block"},
	} {
		t.Run(name, func(t *testing.T) {
			f, _ := newTestFactory(nil)
			f.TLS.CACerts = []string{tc.file}
			_, err := f.HTTPClient("")
			if ExitCode(err) != ExitUsage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a usage error saying %q", err, tc.want)
			}
			if _, err2 := f.CATrust(""); err2 == nil {
				t.Error("CATrust accepted the bad file")
			}
		})
	}
}

func TestCATrust(t *testing.T) {
	caFile := testca.WriteFile(t, t.TempDir(), "ca.pem", testca.New(t, "CA").PEM)
	f, _ := newTestFactory(map[string]string{CACertEnv: caFile})
	tr, err := f.CATrust("")
	if err != nil || tr.Insecure || !strings.Contains(tr.Summary, "1 certificates from $"+CACertEnv+" ("+caFile+")") {
		t.Fatalf("trust %+v, %v", tr, err)
	}
	f.TLS.InsecureSkipTLSVerify = true
	if tr, _ := f.CATrust(""); !tr.Insecure {
		t.Fatalf("insecure trust %+v", tr)
	}
}
