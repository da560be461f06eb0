package dashboard

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func newHandler(t *testing.T) http.Handler {
	t.Helper()
	h, err := Handler(Options{Issuer: "https://sso.example.com:8443/realms/pbench-server", Paths: []string{"/api/v1/user", "/api/v1/admin"}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(t *testing.T, h http.Handler, method, target string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

// TestSecurityHeaders: every answer carries the policy that keeps scripts
// to the page's own files and requests to serve and the broker.
func TestSecurityHeaders(t *testing.T) {
	h := newHandler(t)
	for _, p := range []string{"/dashboard/", "/dashboard/app.js", "/dashboard/config.json", "/dashboard/nope", "/dashboard/vendor/"} {
		resp := get(t, h, http.MethodGet, p)
		csp := resp.Header.Get("Content-Security-Policy")
		directives := map[string]string{}
		for d := range strings.SplitSeq(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		want := map[string]string{
			"default-src":     "'none'",
			"script-src":      "'self'",
			"style-src":       "'self'",
			"connect-src":     "'self' https://sso.example.com:8443",
			"frame-ancestors": "'none'",
			"base-uri":        "'none'",
		}
		for name, value := range want {
			if directives[name] != value {
				t.Errorf("%s: CSP %s = %q, want %q (policy %q)", p, name, directives[name], value, csp)
			}
		}
		for _, h := range []string{"X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("%s: no %s", p, h)
			}
		}
		if resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: Referrer-Policy %q: the page's address carries the code after login", p, resp.Header.Get("Referrer-Policy"))
		}
	}
}

func TestFiles(t *testing.T) {
	h := newHandler(t)
	cases := []struct {
		path        string
		status      int
		contentType string
	}{
		{"/dashboard/", http.StatusOK, "text/html; charset=utf-8"},
		{"/dashboard/app.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/dashboard/oidc.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/dashboard/vendor/oidc-client-ts.min.js", http.StatusOK, "text/javascript; charset=utf-8"},
		{"/dashboard/style.css", http.StatusOK, "text/css; charset=utf-8"},
		{"/dashboard/config.json", http.StatusOK, "application/json"},
		{"/dashboard/vendor/", http.StatusNotFound, ""}, // no listing
		{"/dashboard/missing.js", http.StatusNotFound, ""},
	}
	for _, c := range cases {
		resp := get(t, h, http.MethodGet, c.path)
		if resp.StatusCode != c.status {
			t.Errorf("GET %s: %d, want %d", c.path, resp.StatusCode, c.status)
		}
		if c.contentType != "" && resp.Header.Get("Content-Type") != c.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, resp.Header.Get("Content-Type"), c.contentType)
		}
	}
	if resp := get(t, h, http.MethodPost, "/dashboard/"); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestConfigJSON(t *testing.T) {
	for _, c := range []struct {
		opts      Options
		wantScope string
		wantPaths []string
	}{
		{Options{Issuer: "http://127.0.0.1:8080/realms/x"}, DefaultScope, []string{"/api/v1/user"}},
		{Options{Issuer: "http://127.0.0.1:8080/dex", Scope: "openid email offline_access", Paths: []string{"/a", "/b"}},
			"openid email offline_access", []string{"/a", "/b"}},
	} {
		h, err := Handler(c.opts)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Scope string
			Paths []string
		}
		resp := get(t, h, http.MethodGet, "/dashboard/config.json")
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.Scope != c.wantScope || !slices.Equal(got.Paths, c.wantPaths) {
			t.Errorf("%+v: config.json = %+v", c.opts, got)
		}
	}
}

func TestBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{},
		{Issuer: "sso.example.com/realms/x"},
		{Issuer: "ftp://sso.example.com/realms/x"},
		{Issuer: "https://sso.example.com/realms/x", Scope: "profile email"},
		{Issuer: "https://sso.example.com/realms/x", Scope: "openidx"},
	} {
		if _, err := Handler(opts); err == nil {
			t.Errorf("Handler(%+v) accepted", opts)
		}
	}
}

// TestNoInlineScript: every script of the page is a file of its own, which
// exists, and no element carries an event handler attribute; the CSP would
// block them, so they would be dead code.
func TestNoInlineScript(t *testing.T) {
	b, err := fs.ReadFile(assets, "assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var scripts []string
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				if strings.HasPrefix(a.Key, "on") {
					t.Errorf("<%s %s=...>: inline event handlers are blocked by the CSP", n.Data, a.Key)
				}
				if (a.Key == "href" || a.Key == "src") && strings.HasPrefix(strings.TrimSpace(a.Val), "javascript:") {
					t.Errorf("<%s %s=javascript:...>", n.Data, a.Key)
				}
			}
			if n.Data == "style" {
				t.Error("inline <style>: the CSP allows style files only")
			}
			if n.Data == "script" {
				src := attr(n, "src")
				if src == "" || n.FirstChild != nil {
					t.Errorf("inline <script>: %v", n.Attr)
				}
				scripts = append(scripts, src)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if !slices.Contains(scripts, "vendor/oidc-client-ts.min.js") || !slices.Contains(scripts, "app.js") {
		t.Errorf("scripts = %v", scripts)
	}
	for _, src := range scripts {
		if _, err := fs.Stat(assets, path.Join("assets", src)); err != nil {
			t.Errorf("script %s: %v", src, err)
		}
	}
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// TestVendoredMatchesPin: the embedded oidc-client-ts is the file the pin
// names (scripts/vendor-oidc-client-ts.sh --check compares it with the
// registry's package; this catches an edit without network).
func TestVendoredMatchesPin(t *testing.T) {
	pin := readPin(t)
	if pin["package"] != "oidc-client-ts" || !strings.HasPrefix(pin["version"], "3.") || strings.ContainsAny(pin["version"], "^~*x ") {
		t.Errorf("pin %v: want oidc-client-ts at an exact 3.x version", pin)
	}
	if !strings.HasPrefix(pin["integrity"], "sha512-") {
		t.Errorf("pin integrity %q: want the registry's sha512", pin["integrity"])
	}
	b, err := fs.ReadFile(assets, "assets/vendor/oidc-client-ts.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != pin["sha256"] {
		t.Errorf("vendor/oidc-client-ts.min.js has sha256 %s, the pin says %s: run make vendor-oidc-client-ts", got, pin["sha256"])
	}
}

func readPin(t *testing.T) map[string]string {
	t.Helper()
	f, err := assets.Open("assets/vendor/oidc-client-ts.pin")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	pin := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		pin[k] = v
	}
	return pin
}
