// Package enterprise tests pbench-auth in a company network: a broker and a
// Pbench server behind an internal CA (made by each test), an HTTP proxy
// process between the CLI and them, opaque tokens and introspection, and
// certificate rotation. The CLI is the real command tree with the real
// factory (cmdutil.New); the broker is the development broker; the proxy is
// a separate process (./proxy) built in TestMain.
package enterprise

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/root"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// proxyBin is the proxy built by TestMain.
var proxyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pbench-auth-enterprise-")
	if err != nil {
		log.Fatal(err)
	}
	proxyBin = filepath.Join(dir, "proxy")
	build := exec.Command("go", "build", "-o", proxyBin, "./proxy") // #nosec G204 -- fixed arguments
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		log.Fatalf("build the test proxy: %v", err)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const (
	realm    = "pbench-server"
	user     = "alice"
	password = "alice-pw"
)

// env is a Pbench server and its broker on one TLS listener on loopback,
// named host (127.0.0.1, or a name only the proxy resolves).
type env struct {
	ca     *testca.CA
	caFile string
	host   string
	url    string // https://host:port
	issuer string
	broker *devbroker.Broker
	srv    *server.Server
	addr   string // the listener's real address
	stderr *testutil.SyncBuffer

	// CLI state shared by the runs of one test.
	stateDir, configDir string
}

type envOptions struct {
	host string // default 127.0.0.1
	// leaf is the served certificate; default: valid for host, signed by the CA.
	leaf func(ca *testca.CA, host string) *testca.Leaf
	// edit changes the server's configuration.
	edit func(*env, *server.Config)
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if o.host == "" {
		o.host = "127.0.0.1"
	}
	ca := testca.New(t, "Pbench Test Internal CA")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ca: ca, host: o.host, addr: ln.Addr().String(), stderr: &testutil.SyncBuffer{},
		stateDir: t.TempDir(), configDir: t.TempDir()}
	e.caFile = testca.WriteFile(t, t.TempDir(), "internal-ca.pem", ca.PEM)
	e.url = "https://" + net.JoinHostPort(o.host, fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
	e.issuer = e.url + "/realms/" + realm
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))

	e.broker, err = devbroker.New(devbroker.Options{
		Issuer: e.issuer,
		Users:  []devbroker.User{{Name: user, Password: password, Roles: []string{"ADMIN"}}},
		Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/realms/"+realm, e.broker.Handler())
	mux.Handle("/realms/"+realm+"/", e.broker.Handler())

	// The server's own client (broker keys, introspection) trusts the CA and
	// reaches the listener whatever the host is called.
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", e.addr)
		},
	}
	cfg := server.DefaultConfig()
	cfg.Issuer = e.issuer
	cfg.HTTPClient = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	cfg.Logger = logger
	if o.edit != nil {
		o.edit(e, &cfg)
	}
	if e.srv, err = server.New(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", e.srv.Handler())

	leaf := ca.Issue(t, testca.Options{Hosts: []string{o.host}})
	if o.leaf != nil {
		leaf = o.leaf(ca, o.host)
	}
	hs := httptest.NewUnstartedServer(mux)
	_ = hs.Listener.Close()
	hs.Listener = ln
	hs.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{leaf.TLS}}
	hs.Config.ErrorLog = log.New(e.stderr, "", 0) // refused handshakes
	hs.StartTLS()
	t.Cleanup(hs.Close)
	return e
}

// waitReady waits for the server to load the broker's keys.
func (e *env) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, why := e.srv.Ready()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never loaded the broker's keys: %s\n%s", why, e.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// result is one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// cliOptions are what a CLI run sees of its surroundings.
type cliOptions struct {
	env     map[string]string // besides XDG_*, HOME and the token store
	browser func(string) error
	// stderr, when set, receives stderr as it is written.
	stderr *testutil.SyncBuffer
}

// cli runs the real command tree with the real factory, as main does: the
// returned error is printed on stderr and mapped to the exit code.
func (e *env) cli(t *testing.T, o cliOptions, args ...string) result {
	t.Helper()
	env := map[string]string{
		"HOME":                    e.stateDir,
		"XDG_STATE_HOME":          e.stateDir,
		"XDG_CONFIG_HOME":         e.configDir,
		"PBENCH_AUTH_TOKEN_STORE": "file",
	}
	for k, v := range o.env {
		env[k] = v
	}
	f := cmdutil.New()
	ios, _, out, _ := cmdutil.Test()
	errOut := o.stderr
	if errOut == nil {
		errOut = &testutil.SyncBuffer{}
	}
	ios.ErrOut = errOut
	f.IO = ios
	f.Getenv = func(k string) string { return env[k] }
	f.OpenBrowser = o.browser
	if f.OpenBrowser == nil {
		f.OpenBrowser = func(string) error { return fmt.Errorf("no browser in this test") }
	}
	cmd := root.NewCmd(f)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	if err != nil {
		_, _ = fmt.Fprintln(errOut, "pbench-auth:", err)
	}
	return result{code: cmdutil.ExitCode(err), stdout: out.String(), stderr: errOut.String()}
}

// browser is the user's browser: it trusts the company CA (as a company's
// browsers do), uses the proxy when proxy is set (but never for loopback,
// like real browsers), logs alice in at the broker and delivers the code to
// the CLI's loopback listener.
func (e *env) browser(t *testing.T, proxy string) func(string) error {
	hc := e.browserClient(proxy)
	return func(authURL string) error {
		loc, err := devbrowser.Login(t.Context(), hc, authURL, user, password)
		if err != nil {
			t.Errorf("browser: %v", err)
			return nil
		}
		resp, err := hc.Get(loc) // #nosec G107 -- the CLI's loopback listener
		if err != nil {
			t.Errorf("browser: callback: %v", err)
			return nil
		}
		_ = resp.Body.Close()
		return nil
	}
}

// browserClient is the browser's HTTP client.
func (e *env) browserClient(proxy string) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool(), MinVersion: tls.VersionTLS12}}
	if proxy != "" {
		pu, _ := url.Parse("http://" + proxy)
		tr.Proxy = func(r *http.Request) (*url.URL, error) {
			if ip := net.ParseIP(r.URL.Hostname()); ip != nil && ip.IsLoopback() {
				return nil, nil
			}
			return pu, nil
		}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// proxyProc is a running test proxy.
type proxyProc struct {
	addr    string
	logFile string
}

// startProxy starts the proxy process; it is stopped when the test ends.
func startProxy(t *testing.T) *proxyProc {
	t.Helper()
	p := &proxyProc{logFile: filepath.Join(t.TempDir(), "proxy.log")}
	cmd := exec.Command(proxyBin, "-log", p.logFile) // #nosec G204 -- the binary built by TestMain
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("proxy did not start: %v", err)
	}
	p.addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	return p
}

// seen returns the requests the proxy forwarded so far.
func (p *proxyProc) seen(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(p.logFile)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.FieldsFunc(string(b), func(r rune) bool { return r == '\n' })
}

func mkdir(t *testing.T, parent, name string) string {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}
