package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// hasIdentityHeader reports whether h holds an identity header, in any
// spelling that stripIdentityHeaders removes.
func hasIdentityHeader(h http.Header) bool {
	for name := range h {
		if slices.Contains(identityHeaders, http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))) {
			return true
		}
	}
	return false
}

// do sends a request and returns the status, headers and body.
func do(t testing.TB, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func newRequest(t testing.TB, method, url, token string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return req
}

func getEndpoints(t testing.TB, url string, hdr ...string) (pbenchEndpointsDoc, http.Header) {
	t.Helper()
	status, h, body := do(t, newRequest(t, http.MethodGet, url+"/api/v1/endpoints", "", hdr...))
	if status != http.StatusOK {
		t.Fatalf("endpoints: status %d, body %s", status, body)
	}
	var doc pbenchEndpointsDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("endpoints: %v: %s", err, body)
	}
	return doc, h
}

// expand fills a Pbench template as Pbench's Python client does
// (template.format(**params)).
func expand(t testing.TB, doc pbenchEndpointsDoc, name string, params map[string]string) string {
	t.Helper()
	u, ok := doc.URI[name]
	if !ok {
		t.Fatalf("no uri %q in the endpoints document", name)
	}
	if len(u.Params) != len(params) {
		t.Fatalf("uri %q takes %d parameters, given %d", name, len(u.Params), len(params))
	}
	s := u.Template
	for k, v := range params {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

// TestGatewayPbenchClientFlow follows what Pbench's clients do through the
// gateway: endpoints, then each call built from its uri templates.
func TestGatewayPbenchClientFlow(t *testing.T) {
	up, h := newPbenchGateway(t, func(c *Config) {
		c.Anonymous = []string{"/api/v1/datasets"}
	})
	ti := h.ti
	token := ti.token(h.clock.Now(), nil)

	// The client's own token is not passed on for the public document.
	status, hdr, body := do(t, newRequest(t, http.MethodGet, h.http.URL+"/api/v1/endpoints", token, "Accept-Encoding", "gzip"))
	if status != http.StatusOK {
		t.Fatalf("endpoints: %d %s", status, body)
	}
	if r := up.last(t); r.Header.Get("Authorization") != "" || hasIdentityHeader(r.Header) || r.URL.Path != "/api/v1/endpoints" {
		t.Errorf("the endpoints fetch reached the upstream as %s with %v", r.URL.Path, r.Header)
	}
	if v := hdr.Values("Access-Control-Allow-Origin"); len(v) != 0 {
		t.Errorf("the upstream's CORS header came through: %q", v)
	}
	var doc pbenchEndpointsDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Identification != "Pbench server 1.0.0-test" || string(doc.Visualization["benchmarks"]) != `["fio","uperf"]` {
		t.Errorf("the upstream's document was not kept: %s", body)
	}
	wantOpenID := map[string]string{"server": ti.srv.URL, "realm": "pbench", "client": "pbench-client", "issuer": ti.issuer}
	if !mapsEqual(doc.OpenID, wantOpenID) {
		t.Errorf("openid = %v, want serve's %v", doc.OpenID, wantOpenID)
	}
	for name, route := range pbenchRoutes {
		got, ok := doc.URI[name]
		want := h.http.URL + pbenchParam.ReplaceAllString(route, "/{$2}")
		if !ok || got.Template != want {
			t.Errorf("uri %s = %+v, want template %s", name, got, want)
		}
	}
	if got := doc.URI["user"]; got.Template != h.http.URL+"/api/v1/user" || len(got.Params) != 0 {
		t.Errorf("serve's own user endpoint: %+v", got)
	}
	if got := doc.URI["datasets"].Params["dataset"]["type"]; got != "string" {
		t.Errorf("params not kept: %+v", doc.URI["datasets"])
	}
	if status, hdr, body := do(t, newRequest(t, http.MethodHead, h.http.URL+"/api/v1/endpoints", "")); status != http.StatusOK ||
		body != "" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("HEAD endpoints: %d %v %q", status, hdr, body)
	}
	if r := up.last(t); r.Method != http.MethodGet {
		t.Errorf("HEAD endpoints reached the upstream as %s", r.Method)
	}

	// Anonymous: the public dataset; the private one is the upstream's call.
	spoof := []string{"X-Forwarded-User", "alice", "X_Forwarded_Roles", "ADMIN", "x-forwarded-email", "a@x"}
	status, _, body = do(t, newRequest(t, http.MethodGet, expand(t, doc, "datasets", map[string]string{"dataset": "public-ds"}), "", spoof...))
	if status != http.StatusOK || !strings.Contains(body, `"public"`) {
		t.Errorf("anonymous public dataset: %d %s", status, body)
	}
	if r := up.last(t); hasIdentityHeader(r.Header) || r.Header.Get("Authorization") != "" {
		t.Errorf("an anonymous request reached the upstream with %v", r.Header)
	}
	status, _, _ = do(t, newRequest(t, http.MethodGet, expand(t, doc, "datasets", map[string]string{"dataset": "private-ds"}), "", spoof...))
	if status != http.StatusUnauthorized {
		t.Errorf("anonymous private dataset with spoofed identity: %d, want the upstream's 401", status)
	}
	// With the token: the owner reads the private dataset.
	status, _, body = do(t, newRequest(t, http.MethodGet, expand(t, doc, "datasets_metadata", map[string]string{"dataset": "private-ds"}), token, spoof...))
	if status != http.StatusOK || !strings.Contains(body, `"private"`) {
		t.Errorf("owner's private dataset: %d %s", status, body)
	}
	if r := up.last(t); r.Header.Get("X-Forwarded-User") != "alice" || len(r.Header.Values("X-Forwarded-Roles")) != 1 {
		t.Errorf("identity headers upstream: %v", r.Header)
	}
	// A bad token is 401, never downgraded to anonymous, and never reaches
	// the upstream.
	before := up.calls()
	for _, bad := range []string{"not-a-jwt", token[:len(token)-4] + "AAAA"} {
		status, hdr, _ := do(t, newRequest(t, http.MethodGet, expand(t, doc, "datasets", map[string]string{"dataset": "public-ds"}), bad))
		if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("bad token on an anonymous path: %d %q", status, hdr.Get("WWW-Authenticate"))
		}
	}
	for _, req := range []*http.Request{
		newRequest(t, http.MethodGet, expand(t, doc, "datasets", map[string]string{"dataset": "public-ds"})+"?access_token=x", ""),
		newRequest(t, http.MethodDelete, expand(t, doc, "datasets", map[string]string{"dataset": "public-ds"}), ""), // method not granted
		newRequest(t, http.MethodGet, expand(t, doc, "server_audit", nil), ""),                                      // path not granted
		newRequest(t, http.MethodGet, h.http.URL+"/api/v1/DATASETS/public-ds", ""),                                  // grants match exactly
		newRequest(t, http.MethodGet, h.http.URL+"/api/v1/datasets", "", "Authorization", "Basic YTpi"),             // credentials of another kind
	} {
		if status, _, body := do(t, req); status != http.StatusUnauthorized {
			t.Errorf("%s %s: %d %s, want 401", req.Method, req.URL, status, body)
		}
	}
	if up.calls() != before {
		t.Error("refused requests reached the upstream")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestAnonymousNeverUnderARoleRule: a role rule wins over an anonymous one.
func TestAnonymousNeverUnderARoleRule(t *testing.T) {
	_, h := newPbenchGateway(t, func(c *Config) {
		c.Anonymous = []string{"/api/v1=GET,HEAD,POST"}
		c.RequireRoles = []string{"/api/v1/admin=ADMIN"}
	})
	for _, p := range []string{"/api/v1/admin/x", "/api/v1/Admin/x", "/api/v1/admin.json"} {
		if status := rawGet(t, h.http.URL, p, ""); status != http.StatusUnauthorized {
			t.Errorf("anonymous %s: %d, want 401", p, status)
		}
	}
	if status := rawGet(t, h.http.URL, "/api/v1/datasets/public-ds", ""); status != http.StatusOK {
		t.Errorf("anonymous public dataset: %d", status)
	}
	req := newRequest(t, http.MethodPost, h.http.URL+"/api/v1/admin/x", "")
	if status, _, _ := do(t, req); status != http.StatusUnauthorized {
		t.Errorf("anonymous POST under the role rule: %d", status)
	}
}

// TestEndpointsAddressFromTrustedProxies: the uri templates follow
// X-Forwarded-Host/-Proto only from a trusted proxy, standalone and in
// gateway mode, and the gateway tells the upstream the same address.
func TestEndpointsAddressFromTrustedProxies(t *testing.T) {
	up := newPbenchUpstream(t)
	ti := newTestIssuer(t)
	fwd := []string{"X-Forwarded-Host", "pbench.example.com, evil.example", "X-Forwarded-Proto", "https", "X-Forwarded-For", "203.0.113.7",
		"Forwarded", "host=pbench.example.com;proto=https"}
	for _, c := range []struct {
		name     string
		trusted  []string
		upstream string
		wantBase func(h *harness) string
	}{
		{"standalone, untrusted", []string{"10.0.0.0/8"}, "", func(h *harness) string { return h.http.URL }},
		{"standalone, trusted", []string{"127.0.0.0/8"}, "", func(*harness) string { return "https://pbench.example.com" }},
		{"gateway, untrusted", nil, up.srv.URL, func(h *harness) string { return h.http.URL }},
		{"gateway, trusted", []string{"127.0.0.1", "::1"}, up.srv.URL, func(*harness) string { return "https://pbench.example.com" }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, ti, func(cfg *Config) { cfg.TrustedProxies, cfg.Upstream = c.trusted, c.upstream })
			doc, hdr := getEndpoints(t, h.http.URL, fwd...)
			want := c.wantBase(h)
			if got := doc.URI["user"].Template; got != want+"/api/v1/user" {
				t.Errorf("user template %s, want %s", got, want+"/api/v1/user")
			}
			if got := doc.URI["endpoints"].Template; got != want+"/api/v1/endpoints" {
				t.Errorf("endpoints template %s", got)
			}
			if hdr.Get("Cache-Control") != "no-store" && c.upstream != "" {
				t.Errorf("gateway endpoints Cache-Control %q", hdr.Get("Cache-Control"))
			}
			if c.upstream == "" {
				if len(doc.URI) != len(ownEndpoints) || !strings.HasPrefix(doc.Identification, "pbench-auth ") {
					t.Errorf("standalone document: %+v", doc)
				}
				return
			}
			if got := doc.URI["datasets"].Template; got != want+"/api/v1/datasets/{dataset}" {
				t.Errorf("datasets template %s", got)
			}
			r := up.last(t)
			wantHost := strings.TrimPrefix(strings.TrimPrefix(want, "http://"), "https://")
			if r.Header.Get("X-Forwarded-Host") != wantHost {
				t.Errorf("upstream X-Forwarded-Host %q, want %q", r.Header.Get("X-Forwarded-Host"), wantHost)
			}
			xff := r.Header.Get("X-Forwarded-For")
			if trusted := c.trusted != nil; trusted != strings.HasPrefix(xff, "203.0.113.7, ") || r.Header.Get("Forwarded") != "" {
				t.Errorf("upstream X-Forwarded-For %q, Forwarded %q (trusted %v)", xff, r.Header.Get("Forwarded"), trusted)
			}
		})
	}
}

// TestGatewayEndpointsUpstreamProblems: an upstream that is no Pbench
// server gives 502 with a message saying so.
func TestGatewayEndpointsUpstreamProblems(t *testing.T) {
	ti := newTestIssuer(t)
	for name, c := range map[string]struct {
		handler http.HandlerFunc
		want    string
	}{
		"status":    {func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }, "answered 500"},
		"not json":  {func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>")) }, "not a JSON object"},
		"bad uri":   {func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"uri":[1]}`)) }, `uri\" that is not an object`},
		"too large": {func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, maxEndpointsDocument+10)) }, "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			up := httptest.NewServer(c.handler)
			defer up.Close()
			h := newHarness(t, ti, func(cfg *Config) { cfg.Upstream = up.URL })
			status, _, body := h.get(t, "/api/v1/endpoints", "")
			if status != http.StatusBadGateway || !strings.Contains(body, c.want) {
				t.Errorf("status %d, body %s; want 502 with %q", status, body, c.want)
			}
		})
	}
}

// TestGatewayEndpointsForOtherUpstreams: an upstream without an endpoints
// document (not a Pbench server) gets serve's own, at the client's address.
func TestGatewayEndpointsForOtherUpstreams(t *testing.T) {
	up := httptest.NewServer(http.NotFoundHandler())
	defer up.Close()
	h := newHarness(t, newTestIssuer(t), func(c *Config) { c.Upstream = up.URL })
	doc, _ := getEndpoints(t, h.http.URL)
	if doc.OpenID["client"] != "pbench-client" || doc.URI["user"].Template != h.http.URL+"/api/v1/user" || len(doc.URI) != len(ownEndpoints) {
		t.Errorf("document: %+v", doc)
	}
}

func TestRebaseTemplate(t *testing.T) {
	for _, c := range []struct{ tmpl, upstreamPath, want string }{
		{"http://10.0.0.1:8001/api/v1/datasets/{dataset}", "", "https://p.example/api/v1/datasets/{dataset}"},
		{"https://up/base/api/v1/x?y={z}", "/base", "https://p.example/api/v1/x?y={z}"},
		{"https://up/basement/api/v1/x", "/base", "https://p.example/basement/api/v1/x"},
		{"https://up", "", "https://p.example/"},
		{"https://up?q", "", "https://p.example/?q"},
		{"/api/v1/relative", "", "/api/v1/relative"},
		{"ftp://up/x", "", "ftp://up/x"},
	} {
		if got := rebaseTemplate(c.tmpl, "https://p.example", c.upstreamPath); got != c.want {
			t.Errorf("rebaseTemplate(%q, %q) = %q, want %q", c.tmpl, c.upstreamPath, got, c.want)
		}
	}
}

// TestCORS: preflights are answered by serve for configured origins only,
// on its own endpoints and the gateway, and never reach the upstream; the
// upstream's own CORS headers never reach the browser.
func TestCORS(t *testing.T) {
	up, h := newPbenchGateway(t, func(c *Config) {
		c.CORSOrigins = []string{"https://dashboard.example.com"}
	})
	ti := h.ti
	token := ti.token(h.clock.Now(), nil)
	for _, path := range []string{"/api/v1/user", "/api/v1/datasets/private-ds", "/api/v1/endpoints"} {
		before := up.calls()
		pre := func(origin string) (int, http.Header) {
			status, hdr, _ := do(t, newRequest(t, http.MethodOptions, h.http.URL+path, "",
				"Origin", origin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization"))
			return status, hdr
		}
		status, hdr := pre("https://dashboard.example.com")
		if status != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "https://dashboard.example.com" ||
			!strings.Contains(strings.ToLower(hdr.Get("Access-Control-Allow-Headers")), "authorization") {
			t.Errorf("%s preflight, allowed origin: %d %v", path, status, hdr)
		}
		status, hdr = pre("https://evil.example.com")
		if hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s preflight, other origin: %d %v", path, status, hdr)
		}
		if up.calls() != before {
			t.Errorf("%s: a preflight reached the upstream", path)
		}
		for origin, want := range map[string]string{"https://dashboard.example.com": "https://dashboard.example.com", "https://evil.example.com": ""} {
			_, hdr, _ := do(t, newRequest(t, http.MethodGet, h.http.URL+path, token, "Origin", origin))
			if got := hdr.Values("Access-Control-Allow-Origin"); strings.Join(got, ",") != want {
				t.Errorf("%s GET from %s: Access-Control-Allow-Origin %q, want %q", path, origin, got, want)
			}
		}
	}
	// Without --cors-origin there is no CORS at all.
	h2 := newHarness(t, ti, nil)
	_, hdr, _ := do(t, newRequest(t, http.MethodGet, h2.http.URL+"/api/v1/user", token, "Origin", "https://dashboard.example.com"))
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("CORS without origins configured: %v", hdr)
	}
}

// TestPbenchPythonClient runs Pbench's client behaviour, in Python with
// requests (as lib/pbench/client does), against the gateway.
func TestPbenchPythonClient(t *testing.T) {
	python := "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import requests").Run(); err != nil { // #nosec G204 -- fixed arguments
		t.Skip("needs Debian's python3 with python3-requests (scripts/install-deps.sh installs it)")
	}
	up, h := newPbenchGateway(t, func(c *Config) {
		c.Anonymous = []string{"/api/v1/datasets=GET,HEAD"}
		c.RequireRoles = []string{"/api/v1/admin=ADMIN"}
	})
	ti := h.ti
	now := h.clock.Now()
	cmd := exec.Command(python, filepath.Join("testdata", "pbench_client.py"), h.http.URL) // #nosec G204 -- the test's own script
	cmd.Env = append(os.Environ(),
		"PBENCH_TEST_TOKEN="+ti.token(now, nil),
		"PBENCH_TEST_PLAIN_TOKEN="+ti.token(now, func(c map[string]any) { delete(c, "resource_access") }),
		"PBENCH_TEST_ISSUER="+ti.issuer,
		"NO_PROXY=*")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the Pbench client flow failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "pbench client flow: ok") {
		t.Errorf("output: %s", out)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, r := range up.requests {
		if r.Header.Get("X-Forwarded-User") == "mallory" {
			t.Errorf("a client's identity header reached the upstream: %s %v", r.URL, r.Header)
		}
	}
}
