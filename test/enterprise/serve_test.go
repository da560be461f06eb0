package enterprise

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
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
	addr := testutil.FreeAddr(t)

	ios, _, _, _ := cmdutil.Test()
	stderr := &testutil.SyncBuffer{}
	ios.ErrOut = stderr
	f := cmdutil.New()
	f.IO = ios
	f.Getenv = func(k string) string { return map[string]string{"GOMEMLIMIT": "off"}[k] }
	cmd := root.NewCmd(f)
	cmd.SetArgs([]string{"serve", "--dev", "--listen", addr, "--tls-cert", certFile, "--tls-key", keyFile, "--ca-cert", caFile})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

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
// about) for up to 15s.
func waitFor(t *testing.T, what string, cond func() bool, log *testutil.SyncBuffer) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s\n%s", what, log.String())
		}
		time.Sleep(50 * time.Millisecond)
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
