package serve

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
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
	"github.com/spf13/pflag"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
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

// TestGatewayFlags: the flags of issue 15 in the configuration, from the
// command line and from the file, and their problems reported by --check.
func TestGatewayFlags(t *testing.T) {
	o := parse(t, "--issuer", "https://sso.example.com/realms/pbench", "--upstream", "http://127.0.0.1:8001",
		"--anonymous", "/api/v1/datasets", "--anonymous", "/api/v1/public=GET", "--cors-origin", "https://dash.example.com",
		"--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "192.0.2.1")
	c, err := o.config()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Anonymous, []string{"/api/v1/datasets", "/api/v1/public=GET"}) || !slices.Equal(c.CORSOrigins, []string{"https://dash.example.com"}) ||
		!slices.Equal(c.TrustedProxies, []string{"10.0.0.0/8", "192.0.2.1"}) {
		t.Errorf("config = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("valid flags refused: %v", err)
	}

	file := filepath.Join(t.TempDir(), "serve.yaml")
	yaml := "issuer: https://sso.example.com/realms/pbench\nupstream: http://127.0.0.1:8001\nanonymous: [/api/v1/datasets]\n" +
		"cors-origin: ['*']\ntrusted-proxy: [127.0.0.1]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = parse(t, "--config", file, "--cors-origin", "https://a.example").config()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Anonymous, []string{"/api/v1/datasets"}) || !slices.Equal(c.CORSOrigins, []string{"https://a.example"}) ||
		!slices.Equal(c.TrustedProxies, []string{"127.0.0.1"}) {
		t.Errorf("file and flags: %+v", c)
	}

	ios, _, _, errOut := cmdutil.Test()
	cmd := NewCmd(&cmdutil.Factory{IO: ios}, nil)
	cmd.SetArgs([]string{"--check", "--issuer", "https://sso.example.com/realms/pbench", "--anonymous", "/api/v1/x=G3T",
		"--cors-origin", "https://dash.example.com/path", "--trusted-proxy", "10.0.0.0/33", "--require-role", "/api/v1/a;b=ADMIN"})
	if err := cmd.Execute(); cmdutil.ExitCode(err) != cmdutil.ExitUsage {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{`anonymous "/api/v1/x=G3T"`, "set upstream too", `cors-origin "https://dash.example.com/path"`,
		`trusted-proxy "10.0.0.0/33"`, `require-role "/api/v1/a;b=ADMIN"`} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("no problem about %s:\n%s", want, errOut)
		}
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

// Every flag of a server.Config field, given on the command line, wins over
// the same key in the --config file: none silently loses precedence.
func TestEveryConfigFlagWinsOverTheFile(t *testing.T) {
	all := pflag.NewFlagSet("all", pflag.ContinueOnError)
	addConfigFlags(all, &server.Config{})
	n := 0
	all.VisitAll(func(f *pflag.Flag) {
		n++
		var fileVal, flagVal string
		switch f.Value.Type() {
		case "string":
			fileVal, flagVal = "from-file", "from-flag"
		case "stringArray":
			fileVal, flagVal = "[from-file]", "from-flag"
		case "duration":
			fileVal, flagVal = "9s", "7s"
		case "bool":
			fileVal, flagVal = "false", "true"
		case "int":
			fileVal, flagVal = "9", "7"
		default:
			t.Fatalf("--%s: a flag of type %s: teach this test a value for it", f.Name, f.Value.Type())
		}
		file := filepath.Join(t.TempDir(), "serve.yaml")
		if err := os.WriteFile(file, []byte(f.Name+": "+fileVal+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := parse(t, "--config", file, "--"+f.Name+"="+flagVal).config()
		if err != nil {
			t.Fatalf("--%s: %v", f.Name, err)
		}
		got, read := pflag.NewFlagSet("got", pflag.ContinueOnError), c
		addConfigFlags(got, &read) // stores the defaults in read: restore c's values
		read = c
		want := flagVal
		if f.Value.Type() == "stringArray" {
			want = "[" + flagVal + "]"
		}
		if v := got.Lookup(f.Name).Value.String(); v != want {
			t.Errorf("--%s=%s with %q in the file: the configuration has %s", f.Name, flagVal, fileVal, v)
		}
	})
	if n < 17 {
		t.Errorf("only %d configuration flags", n)
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

// startBroker serves a minimal OpenID discovery document and JWKS.
func startBroker(t *testing.T) (issuer string) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/realms/pbench/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": issuer + "/certs"})
	})
	mux.HandleFunc("/realms/pbench/certs", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k", Algorithm: "RS256", Use: "sig"}}})
	})
	broker := httptest.NewServer(mux)
	t.Cleanup(broker.Close)
	return broker.URL + "/realms/pbench"
}

// startServe runs `serve` with opts until the returned stop is called, and
// waits for its start-up line and for /readyz to answer 200.
func startServe(t *testing.T, opts *Options, client *http.Client) (base string, stderr *testutil.SyncBuffer, stop func() error) {
	stderr = &testutil.SyncBuffer{}
	opts.IO = &cmdutil.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: stderr}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, opts) }()
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			cancel() // what SIGINT/SIGTERM do through the command's context
			select {
			case stopErr = <-done:
			case <-time.After(15 * time.Second):
				stopErr = errors.New("run did not return after the context was cancelled")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { _ = stop() })

	addrRE := regexp.MustCompile(`listening on (https?://\S+), issuer (\S+)`)
	for deadline := time.Now().Add(time.Minute); base == ""; {
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			base = m[1]
			if m[2] != opts.Flags.Issuer {
				t.Errorf("start-up line names issuer %q", m[2])
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up line: %s", stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := client.Get(base + "/readyz")
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
	return base, stderr, stop
}

func TestServeAndShutDown(t *testing.T) {
	opts := &Options{Flags: server.DefaultConfig(), StateDir: t.TempDir}
	opts.Flags.Listen = "127.0.0.1:0"
	opts.Flags.Issuer = startBroker(t)
	base, stderr, stop := startServe(t, opts, http.DefaultClient)

	// A header larger than MaxHeaderBytes is refused with 431.
	req, _ := http.NewRequest(http.MethodGet, base+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 100<<10))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversize header: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}

	if err := stop(); err != nil {
		t.Errorf("run after shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after shutdown")
	}
	if !strings.Contains(stderr.String(), "shutting down") || !strings.Contains(stderr.String(), "path=/readyz status=200") {
		t.Errorf("stderr: %s", stderr)
	}
}

func TestServeTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}

	opts := &Options{Flags: server.DefaultConfig(), StateDir: t.TempDir}
	opts.Flags.Listen = "127.0.0.1:0"
	opts.Flags.Issuer = startBroker(t)
	opts.Flags.TLSCert, opts.Flags.TLSKey = certFile, keyFile
	base, _, stop := startServe(t, opts, client)
	if !strings.HasPrefix(base, "https://") {
		t.Errorf("start-up line says %s, want https", base)
	}
	resp, err := client.Get(base + "/api/v1/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d", resp.StatusCode)
	}
	if err := stop(); err != nil {
		t.Error(err)
	}
}

// TestDashboard: serve hosts the dashboard at /dashboard/ and redirects /
// there, unless an upstream owns the site (gateway mode) or --dashboard=false.
func TestDashboard(t *testing.T) {
	issuer := startBroker(t)
	upstream := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(upstream.Close)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		name          string
		args          []string
		wantDashboard bool
		wantRedirect  bool
	}{
		{"default", nil, true, true},
		{"gateway", []string{"--upstream", upstream.URL}, true, false},
		{"off", []string{"--dashboard=false"}, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			opts := parse(t, append([]string{"--listen", "127.0.0.1:0", "--issuer", issuer,
				"--require-role", "/api/v1/admin=ADMIN", "--dashboard-scope", "openid offline_access"}, c.args...)...)
			opts.StateDir = t.TempDir // the default key database, kept out of the user's state directory
			base, stderr, _ := startServe(t, opts, http.DefaultClient)

			resp, err := noRedirect.Get(base + "/")
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if redirected := resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == "/dashboard/"; redirected != c.wantRedirect {
				t.Errorf("GET / answered %d Location %q, want a redirect to /dashboard/: %t", resp.StatusCode, resp.Header.Get("Location"), c.wantRedirect)
			}

			resp, err = http.Get(base + "/dashboard/config.json")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			if (resp.StatusCode == http.StatusOK) != c.wantDashboard {
				t.Fatalf("GET /dashboard/config.json answered %d, want the dashboard: %t", resp.StatusCode, c.wantDashboard)
			}
			if !c.wantDashboard {
				if strings.Contains(stderr.String(), "dashboard at") {
					t.Errorf("start-up names a dashboard it does not serve: %s", stderr)
				}
				return
			}
			var config struct {
				Scope string
				Paths []string
			}
			if err := json.NewDecoder(resp.Body).Decode(&config); err != nil {
				t.Fatal(err)
			}
			if config.Scope != "openid offline_access" || !slices.Equal(config.Paths, []string{"/api/v1/user", "/api/v1/admin"}) {
				t.Errorf("config.json = %+v, want the --dashboard-scope and the --require-role prefixes", config)
			}
			if !strings.Contains(stderr.String(), "dashboard at "+base+"/dashboard/") {
				t.Errorf("start-up does not give the dashboard's address: %s", stderr)
			}
		})
	}
}

func TestDashboardScopeNeedsOpenID(t *testing.T) {
	ios, _, _, stderr := cmdutil.Test()
	cmd := NewCmd(&cmdutil.Factory{IO: ios}, nil)
	cmd.SetArgs([]string{"--issuer", "https://sso.example.com/realms/pbench", "--dashboard-scope", "profile email", "--check"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	if cmdutil.ExitCode(err) != cmdutil.ExitUsage || !strings.Contains(stderr.String(), "dashboard-scope") {
		t.Errorf("--check with a scope without openid: %v, %s", err, stderr)
	}
}
