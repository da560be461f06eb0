// Package system tests pbench-auth as separate processes of the real binary:
// broker outages and key rotation (serve --dev as the broker, serve --issuer
// in front of it), 50 concurrent `call`s sharing one refresh, secrets hygiene
// of every command's output, and no plaintext token outside the file store.
//
// The binary is built once per test run (with -race when the tests run with
// it). The same test binary doubles as the --browser-command of `login`: run
// with browserEnv set, it fills the development broker's login form
// (devbrowser) and delivers the redirect to the CLI's loopback listener.
package system

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// browserEnv, in a process's environment, makes this test binary act as the
// browser: it appends what it saw (the PKCE challenge, the code) to the file
// named there.
const browserEnv = "PBENCH_AUTH_SYSTEM_TEST_BROWSER"

// bin is the pbench-auth binary under test.
var bin string

func TestMain(m *testing.M) {
	if log := os.Getenv(browserEnv); log != "" {
		os.Exit(browse(log, os.Args[len(os.Args)-1]))
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pbench-auth-system-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if bin, err = testutil.BuildCLI(dir, raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// browse logs in at authURL as the user in $PBENCH_AUTH_TEST_USER (default
// "user", password the same), records the code_challenge and the code in
// logFile, and GETs the redirect, delivering the code to the CLI.
func browse(logFile, authURL string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	user := cmp(os.Getenv("PBENCH_AUTH_TEST_USER"), "user")
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600) // #nosec G304 -- the test's own file
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = f.Close() }()
	if u, err := url.Parse(authURL); err == nil {
		fmt.Fprintf(f, "challenge %s\n", u.Query().Get("code_challenge"))
	}
	redirect, err := devbrowser.Login(ctx, http.DefaultClient, authURL, user, user)
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser:", err)
		return 1
	}
	if u, err := url.Parse(redirect); err == nil {
		fmt.Fprintf(f, "code %s\n", u.Query().Get("code"))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, redirect, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "browser: deliver the redirect:", err)
		return 1
	}
	_ = resp.Body.Close()
	return 0
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// proc is a running pbench-auth serve.
type proc = testutil.Process

// startServe runs `pbench-auth serve args...`; it is killed at the end of
// the test, and its output logged if the test failed.
func startServe(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...) // #nosec G204 -- the binary under test
	// serve's default API key database is in its state directory: the test's own.
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	return testutil.StartProcess(t, name, cmd)
}

// startBroker runs `serve --dev` on addr with the signing key in keyFile.
func startBroker(t *testing.T, addr, keyFile string, extra ...string) (*proc, string) {
	t.Helper()
	p := startServe(t, "broker "+addr, append([]string{"--dev", "--listen", addr, "--dev-key", keyFile}, extra...)...)
	issuer := "http://" + addr + "/realms/pbench-server"
	waitFor(t, "the broker's discovery", func() error { return expectStatus(issuer+"/.well-known/openid-configuration", "", 200) })
	return p, issuer
}

// waitFor polls check until it succeeds, failing after a minute (a bound
// on start-up and recovery, not a measurement).
func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after a minute", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get sends GET url with the Bearer token (if any).
func get(u, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func expectStatus(u, token string, want int) error {
	status, body, err := get(u, token)
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("status %d, want %d: %s", status, want, strings.TrimSpace(body))
	}
	return nil
}

// brokerToken logs in at the development broker the way a client does
// (authorization code with PKCE; the browser part by devbrowser) and returns
// the access token.
func brokerToken(t *testing.T, issuer string) string {
	t.Helper()
	return brokerTokenAs(t, issuer, "user", "user")
}

// brokerTokenAs is brokerToken for the broker's user name with password.
func brokerTokenAs(t *testing.T, issuer, name, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var doc struct {
		Auth  string `json:"authorization_endpoint"`
		Token string `json:"token_endpoint"`
	}
	_, body, err := get(issuer+"/.well-known/openid-configuration", "")
	if err != nil || json.Unmarshal([]byte(body), &doc) != nil {
		t.Fatalf("discovery at %s: %v %s", issuer, err, body)
	}
	conf := &oauth2.Config{
		ClientID:    "pbench-client",
		Endpoint:    oauth2.Endpoint{AuthURL: doc.Auth, TokenURL: doc.Token, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: "http://127.0.0.1:9/callback", // never fetched: devbrowser returns the redirect
		Scopes:      []string{"openid", "profile", "email"},
	}
	verifier := oauth2.GenerateVerifier()
	redirect, err := devbrowser.Login(ctx, http.DefaultClient, conf.AuthCodeURL(rand.Text(), oauth2.S256ChallengeOption(verifier)), name, password)
	if err != nil {
		t.Fatalf("log in at the broker: %v", err)
	}
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := conf.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	return tok.AccessToken
}

// metric reads a counter from a server's /metrics, e.g.
// `pbench_auth_key_refreshes_total{result="ok"}`.
func metric(t *testing.T, base, name string) int {
	t.Helper()
	_, body, err := get(base+"/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return int(n)
		}
	}
	return 0
}

// writeConfig writes a serve YAML file and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "serve.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs the binary with a private environment (HOME, XDG directories,
// TMPDIR under dir).
type cli struct {
	t   *testing.T
	env []string
	dir string
}

func newCLI(t *testing.T, extraEnv ...string) *cli {
	dir := t.TempDir()
	env := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "TMPDIR", k == "PBENCH_SERVER", strings.HasPrefix(k, "XDG_") && k != "XDG_RUNTIME_DIR",
			strings.HasPrefix(k, "PBENCH_AUTH_"):
			continue
		}
		env = append(env, kv)
	}
	for _, d := range []string{"home", "config", "state", "cache", "data", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env = append(env, "HOME="+filepath.Join(dir, "home"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_STATE_HOME="+filepath.Join(dir, "state"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"), "TMPDIR="+filepath.Join(dir, "tmp"))
	return &cli{t: t, env: append(env, extraEnv...), dir: dir}
}

type result struct {
	code           int
	stdout, stderr string
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	r := testutil.Run(c.t, c.env, bin, args...)
	return result{code: r.Code, stdout: r.Stdout, stderr: r.Stderr}
}

// login logs in to server with the test binary as the browser; what the
// browser saw goes to browserLog.
func (c *cli) login(server, browserLog string, args ...string) result {
	c.t.Helper()
	self, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	saved := c.env
	c.env = append(append([]string{}, c.env...), browserEnv+"="+browserLog)
	defer func() { c.env = saved }()
	r := c.run(append([]string{"login", "--server", server, "--browser-command", self, "--timeout", "1m"}, args...)...)
	if r.code != 0 {
		c.t.Fatalf("login: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	return r
}

// loggedIn starts a broker (serve --dev brokerArgs...) and logs in to it
// with the token store named, through the test's browser (its log is
// c.dir/browser.log). It returns the CLI, the server's URL, the broker and
// the login's output.
func loggedIn(t *testing.T, store string, loginArgs []string, brokerArgs ...string) (*cli, string, *proc, result) {
	t.Helper()
	addr := testutil.ReserveAddr(t)
	base := "http://" + addr
	broker, _ := startBroker(t, addr, filepath.Join(t.TempDir(), "key.pem"), brokerArgs...)
	c := newCLI(t, "PBENCH_AUTH_TOKEN_STORE="+store, "PBENCH_SERVER="+base)
	r := c.login(base, filepath.Join(c.dir, "browser.log"), loginArgs...)
	return c, base, broker, r
}

// tokenFile is the file store's file of the only profile.
func (c *cli) tokenFile() string {
	c.t.Helper()
	m, _ := filepath.Glob(filepath.Join(c.dir, "state", "pbench-auth", "*.tokens.json"))
	if len(m) != 1 {
		c.t.Fatalf("want one token file in the state directory, found %q", m)
	}
	return m[0]
}

// editTokens changes the stored token set of the file store.
func (c *cli) editTokens(edit func(map[string]any)) {
	c.t.Helper()
	p := c.tokenFile()
	b, err := os.ReadFile(p) // #nosec G304 -- the test's own file
	if err != nil {
		c.t.Fatal(err)
	}
	var rec struct {
		Profile string         `json:"profile"`
		Tokens  map[string]any `json:"tokens"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Tokens == nil {
		c.t.Fatalf("token file: %v", err)
	}
	edit(rec.Tokens)
	if b, err = json.Marshal(rec); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// storedTokens returns the access, refresh and id tokens in the file store.
func (c *cli) storedTokens() []string {
	c.t.Helper()
	b, err := os.ReadFile(c.tokenFile())
	if err != nil {
		c.t.Fatal(err)
	}
	var rec struct {
		Tokens struct {
			Access  string `json:"access_token"`
			Refresh string `json:"refresh_token"`
			ID      string `json:"id_token"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Tokens.Access == "" {
		c.t.Fatalf("token file: %v", err)
	}
	return []string{rec.Tokens.Access, rec.Tokens.Refresh, rec.Tokens.ID}
}

var jwsLike = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)
