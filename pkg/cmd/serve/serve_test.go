package serve

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
)

func parse(t *testing.T, args ...string) *Options {
	t.Helper()
	ios, _, _, _ := cmdutil.Test()
	var got *Options
	cmd := NewCmd(&cmdutil.Factory{IO: ios}, func(o *Options) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestFlags(t *testing.T) {
	o := parse(t, "--issuer", "https://sso.example.com/realms/pbench", "--audience", "pbench-server",
		"--audience", "other", "--require-role", "/api/v1/admin=ADMIN", "--leeway", "1m", "--check")
	c, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "https://sso.example.com/realms/pbench" || !slices.Equal(c.Audiences, []string{"pbench-server", "other"}) ||
		!slices.Equal(c.RequireRoles, []string{"/api/v1/admin=ADMIN"}) || c.Leeway != time.Minute || !o.Check {
		t.Errorf("config = %+v", c)
	}
	if c.Listen != "127.0.0.1:8080" || c.ClientID != "pbench-client" || c.LogFormat != "text" {
		t.Errorf("defaults: listen %q client %q log %q", c.Listen, c.ClientID, c.LogFormat)
	}
}

func TestConfigFileAndFlagsWin(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "serve.yaml")
	yaml := "issuer: https://sso.example.com/realms/pbench\nclient-id: dash\naudience: [pbench-server]\nleeway: 10s\nlisten: 127.0.0.1:9000\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parse(t, "--config", file, "--client-id", "cli", "--leeway", "30s").config()
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "cli" || c.Leeway != 30*time.Second { // flags win, even when equal to the default
		t.Errorf("flags did not win: client %q leeway %s", c.ClientID, c.Leeway)
	}
	if c.Issuer != "https://sso.example.com/realms/pbench" || c.Listen != "127.0.0.1:9000" || !slices.Equal(c.Audiences, []string{"pbench-server"}) {
		t.Errorf("file values lost: %+v", c)
	}
	if c.LogFormat != "text" {
		t.Errorf("default lost: log-format %q", c.LogFormat)
	}

	if err := os.WriteFile(file, []byte("isuer: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = parse(t, "--config", file).config()
	if cmdutil.ExitCode(err) != cmdutil.ExitUsage || !strings.Contains(err.Error(), "isuer") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	ios, _, _, errOut := cmdutil.Test()
	cmd := NewCmd(&cmdutil.Factory{IO: ios}, nil)
	cmd.SetArgs([]string{"--check", "--issuer", "ftp://sso", "--leeway", "1h", "--require-role", "admin", "--log-format", "xml", "--tls-key", "k.pem"})
	err := cmd.Execute()
	if cmdutil.ExitCode(err) != cmdutil.ExitUsage || !errors.Is(err, cmdutil.ErrSilent) {
		t.Fatalf("err %v, exit code %d, want 2 and nothing more printed", err, cmdutil.ExitCode(err))
	}
	out := errOut.String()
	if n := strings.Count(out, "problem: "); n != 5 {
		t.Errorf("%d problems reported, want 5:\n%s", n, out)
	}
	for _, want := range []string{"issuer", "leeway", "require-role", "log-format", "tls-cert and tls-key"} {
		if !strings.Contains(out, want) {
			t.Errorf("no problem about %s:\n%s", want, out)
		}
	}

	ios, _, _, errOut = cmdutil.Test()
	cmd = NewCmd(&cmdutil.Factory{IO: ios}, nil)
	cmd.SetArgs([]string{"--check", "--issuer", "https://sso.example.com/realms/pbench"})
	if err := cmd.Execute(); err != nil || !strings.Contains(errOut.String(), "configuration OK") {
		t.Errorf("valid config: %v, %s", err, errOut)
	}
}

func TestDevSeam(t *testing.T) {
	ios, _, _, _ := cmdutil.Test()
	opts := &Options{IO: ios, Flags: server.DefaultConfig(), Dev: true}
	opts.Flags.Listen = "127.0.0.1:0"
	err := run(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "--dev") {
		t.Errorf("err = %v", err)
	}
}

// lockedBuffer lets the test read stderr while the server writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeAndShutDown(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var issuer string
	mux := http.NewServeMux()
	mux.HandleFunc("/realms/pbench/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/certs"})
	})
	mux.HandleFunc("/realms/pbench/certs", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k", Algorithm: "RS256", Use: "sig"}}})
	})
	broker := httptest.NewServer(mux)
	defer broker.Close()
	issuer = broker.URL + "/realms/pbench"

	stderr := &lockedBuffer{}
	opts := &Options{IO: &cmdutil.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: stderr}, Flags: server.DefaultConfig()}
	opts.Flags.Listen = "127.0.0.1:0"
	opts.Flags.Issuer = issuer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, opts) }()

	addrRE := regexp.MustCompile(`listening on (http://\S+), issuer (\S+)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
			if m[2] != issuer {
				t.Errorf("start-up line names issuer %q", m[2])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line: %s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v; %s", err, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A header larger than MaxHeaderBytes is refused with 431.
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversize header: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}

	cancel() // what SIGINT/SIGTERM do through the command's context
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after shutdown: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after the context was cancelled")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
	if !strings.Contains(stderr.String(), "shutting down") || !strings.Contains(stderr.String(), "path=/readyz status=200") {
		t.Errorf("stderr: %s", stderr)
	}
}
