package system

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// secretRecorder is a reverse proxy in front of the broker's token endpoint
// that remembers every token the broker hands out or is sent.
type secretRecorder struct {
	srv *httptest.Server

	mu      sync.Mutex
	secrets map[string]string // value -> what it is
}

func newSecretRecorder(t *testing.T, brokerBase string) *secretRecorder {
	t.Helper()
	target, err := url.Parse(brokerBase)
	if err != nil {
		t.Fatal(err)
	}
	sr := &secretRecorder{secrets: map[string]string{}}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		var tok map[string]any
		if json.Unmarshal(body, &tok) == nil {
			for _, k := range []string{"access_token", "refresh_token", "id_token"} {
				if v, ok := tok[k].(string); ok {
					sr.add(v, k)
				}
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	sr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if form, err := url.ParseQuery(string(body)); err == nil {
			for _, k := range []string{"refresh_token", "token", "code", "code_verifier", "client_secret"} {
				if v := form.Get(k); v != "" {
					sr.add(v, "request "+k)
				}
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(sr.srv.Close)
	return sr
}

func (sr *secretRecorder) add(v, what string) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	sr.secrets[v] = what
}

func (sr *secretRecorder) all() map[string]string {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	out := make(map[string]string, len(sr.secrets))
	for k, v := range sr.secrets {
		out[k] = v
	}
	return out
}

// TestNoSecretInAnyOutput runs every command with -v against serve --dev
// (tokens live 10s, inside the refresh margin, so every command after login
// refreshes): login (through the test's browser), status, token, call, call
// again, doctor, logout. It fails if any access, refresh or id token, the
// authorization code or the PKCE code_verifier appears in any stdout or
// stderr (token's stdout excepted: it is the product) or in serve's log.
//
// The secrets are gathered from the token store after each step, from a
// recording proxy in front of the broker's token endpoint (the stored
// endpoint points at it after login), and from the browser (the code). The
// verifier never leaves the CLI: any string of 43-128 unreserved characters
// in the output whose S256 is the login's code_challenge is the verifier.
func TestNoSecretInAnyOutput(t *testing.T) {
	c, base, broker, loginRun := loggedIn(t, "file", []string{"-v"}, "--dev-token-ttl", "10s")
	browserLog := filepath.Join(c.dir, "browser.log")
	rec := newSecretRecorder(t, base)

	type output struct{ name, text string }
	var outputs []output
	secrets := map[string]string{}
	collect := func(step string, r result, stdoutIsProduct bool) {
		t.Helper()
		if !stdoutIsProduct {
			outputs = append(outputs, output{step + " stdout", r.stdout})
		}
		outputs = append(outputs, output{step + " stderr", r.stderr})
		if r.code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", step, r.code, r.stdout, r.stderr)
		}
		if strings.Count(r.stdout+r.stderr, "\n") < 2 {
			t.Errorf("%s -v printed almost nothing: %q %q", step, r.stdout, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(c.dir, "state", "pbench-auth")); err == nil && step != "logout" {
			for i, tok := range c.storedTokens() {
				secrets[tok] = [...]string{"access token", "refresh token", "id token"}[i] + " after " + step
			}
		}
	}

	collect("login", loginRun, false)
	c.editTokens(func(ts map[string]any) {
		u, err := url.Parse(ts["token_endpoint"].(string))
		if err != nil {
			t.Fatal(err)
		}
		ts["token_endpoint"] = rec.srv.URL + u.Path
	})
	collect("status", c.run("status", "-v"), false)
	tokenRun := c.run("token", "-v")
	collect("token", tokenRun, true)
	if !jwsLike.MatchString(strings.TrimSpace(tokenRun.stdout)) {
		t.Errorf("token printed %q, want the access token", tokenRun.stdout)
	}
	collect("call", c.run("call", "-v", "/api/v1/user"), false)
	collect("call again", c.run("call", "-v", "/api/v1/user"), false)
	collect("doctor", c.run("doctor", "-v"), false)
	collect("logout", c.run("logout", "-v"), false)
	broker.Kill()
	outputs = append(outputs, output{"serve --dev log", broker.Output()})

	for v, what := range rec.all() {
		secrets[v] = what + " (seen at the token endpoint)"
	}
	var challenge string
	b, err := os.ReadFile(browserLog) // #nosec G304 -- the test's own file
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		switch k, v, _ := strings.Cut(sc.Text(), " "); k {
		case "code":
			secrets[v] = "authorization code"
		case "challenge":
			challenge = v
		}
	}
	refreshes := 0
	for _, what := range rec.all() {
		if what == "request refresh_token" {
			refreshes++
		}
	}
	t.Logf("%d secrets, %d refresh grants", len(secrets), refreshes)
	if challenge == "" || refreshes < 2 || len(secrets) < 8 {
		t.Fatalf("the test saw too little to prove anything: challenge %q, %d refresh grants, %d secrets", challenge, refreshes, len(secrets))
	}

	for _, o := range outputs {
		for v, what := range secrets {
			if len(v) >= 8 && strings.Contains(o.text, v) {
				t.Errorf("%s contains the %s", o.name, what)
			}
		}
		if v := findVerifier(o.text, challenge); v != "" {
			t.Errorf("%s contains the PKCE code_verifier", o.name)
		}
	}
}

var unreservedRun = regexp.MustCompile(`[A-Za-z0-9._~-]{43,}`)

// findVerifier returns a substring of text that is a PKCE code_verifier
// (RFC 7636: 43-128 unreserved characters) whose S256 is challenge.
func findVerifier(text, challenge string) string {
	for _, run := range unreservedRun.FindAllString(text, -1) {
		for i := 0; i+43 <= len(run); i++ {
			for n := 43; n <= 128 && i+n <= len(run); n++ {
				sum := sha256.Sum256([]byte(run[i : i+n]))
				if base64.RawURLEncoding.EncodeToString(sum[:]) == challenge {
					return run[i : i+n]
				}
			}
		}
	}
	return ""
}

func TestFindVerifier(t *testing.T) {
	v := "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk" // RFC 7636 appendix B
	challenge := "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
	if got := findVerifier("x: "+v+".", challenge); got != v {
		t.Errorf("findVerifier missed the RFC 7636 verifier: %q", got)
	}
	if got := findVerifier("prefix"+v+"suffix~", challenge); got != v {
		t.Errorf("findVerifier missed the verifier inside a longer run: %q", got)
	}
	if got := findVerifier(v[1:], challenge); got != "" {
		t.Errorf("findVerifier matched a wrong string %q", got)
	}
}
