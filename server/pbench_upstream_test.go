package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// pbenchUpstream is a Pbench-shaped API server for gateway tests: Pbench's
// /api/v1/endpoints document (built as Pbench builds it: templates on the
// address from X-Forwarded-Host and X-Forwarded-Proto, else Host and https;
// its own openid section), a public and a private dataset, and an admin
// area. Like Pbench behind flask-cors it allows any origin. It records what
// reached it.
type pbenchUpstream struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []*http.Request // clones, bodies not kept
}

// pbenchRoutes are Pbench's API routes in its own notation
// (lib/pbench/server/api/__init__.py), by endpoint name.
var pbenchRoutes = map[string]string{
	"datasets":           "/api/v1/datasets/<string:dataset>",
	"datasets_list":      "/api/v1/datasets",
	"datasets_detail":    "/api/v1/datasets/<string:dataset>/detail",
	"datasets_metadata":  "/api/v1/datasets/<string:dataset>/metadata",
	"datasets_inventory": "/api/v1/datasets/<string:dataset>/inventory/<path:target>",
	"endpoints":          "/api/v1/endpoints",
	"key":                "/api/v1/key/<string:key>",
	"server_settings":    "/api/v1/server/settings/<string:key>",
	"server_audit":       "/api/v1/server/audit",
	"upload":             "/api/v1/upload/<string:filename>",
}

var pbenchParam = regexp.MustCompile(`/<([^:]+):(\w+)>`)

// pbenchDatasets: dataset id → owner ("" for a public dataset).
var pbenchDatasets = map[string]string{"public-ds": "", "private-ds": "alice"}

func newPbenchUpstream(t testing.TB) *pbenchUpstream {
	t.Helper()
	u := &pbenchUpstream{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/endpoints", u.endpoints)
	mux.HandleFunc("GET /api/v1/datasets/{dataset}", u.dataset)
	mux.HandleFunc("GET /api/v1/datasets/{dataset}/metadata", u.dataset)
	mux.HandleFunc("/api/v1/admin/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"area": "admin", "user": r.Header.Get("X-Forwarded-User")})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "not found")
	})
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.requests = append(u.requests, r.Clone(r.Context()))
		u.mu.Unlock()
		w.Header().Set("Access-Control-Allow-Origin", "*")
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// newPbenchGateway starts a Pbench-shaped upstream and serve in gateway
// mode in front of it, its configuration changed by edit.
func newPbenchGateway(t testing.TB, edit func(*Config)) (*pbenchUpstream, *harness) {
	t.Helper()
	up := newPbenchUpstream(t)
	h := newHarness(t, newTestIssuer(t), func(c *Config) {
		c.Upstream = up.srv.URL
		edit(c)
	})
	return up, h
}

func (u *pbenchUpstream) calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

// last returns the last request that reached the upstream.
func (u *pbenchUpstream) last(t testing.TB) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.requests) == 0 {
		t.Fatal("no request reached the upstream")
	}
	return u.requests[len(u.requests)-1]
}

// endpoints is Pbench's EndpointConfig._get.
func (u *pbenchUpstream) endpoints(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if xfh := r.Header.Get("X-Forwarded-Host"); xfh != "" {
		host = strings.TrimSpace(strings.Split(xfh, ",")[0])
	}
	proto := r.Header.Get("X-Forwarded-Proto")
	if proto == "" {
		proto = "https"
	}
	uris := map[string]any{}
	for name, route := range pbenchRoutes {
		params := map[string]any{}
		for _, m := range pbenchParam.FindAllStringSubmatch(route, -1) {
			params[m[2]] = map[string]string{"type": m[1]}
		}
		uris[name] = map[string]any{
			"template": proto + "://" + host + pbenchParam.ReplaceAllString(route, "/{$2}"),
			"params":   params,
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"identification": "Pbench server 1.0.0-test",
		"uri":            uris,
		"visualization":  map[string]any{"benchmarks": []string{"fio", "uperf"}},
		"openid":         map[string]string{"client": "upstream-client", "realm": "upstream-realm", "server": "https://upstream-sso.invalid"},
	})
}

// dataset answers a public dataset to anyone, a private one to its owner
// only: like Pbench, anonymous users see public data.
func (u *pbenchUpstream) dataset(w http.ResponseWriter, r *http.Request) {
	owner, ok := pbenchDatasets[r.PathValue("dataset")]
	switch {
	case !ok:
		writeMessage(w, http.StatusNotFound, "no such dataset")
	case owner == "":
		writeJSON(w, http.StatusOK, map[string]string{"name": r.PathValue("dataset"), "access": "public"})
	case r.Header.Get("Authorization") == "":
		writeMessage(w, http.StatusUnauthorized, "private dataset: log in")
	case r.Header.Get("X-Forwarded-User") != owner:
		writeMessage(w, http.StatusForbidden, "not yours")
	default:
		writeJSON(w, http.StatusOK, map[string]string{"name": r.PathValue("dataset"), "access": "private"})
	}
}

// pbenchEndpointsDoc is the part of /api/v1/endpoints that Pbench's clients
// read.
type pbenchEndpointsDoc struct {
	Identification string                     `json:"identification"`
	URI            map[string]uriTemplate     `json:"uri"`
	Visualization  map[string]json.RawMessage `json:"visualization"`
	OpenID         map[string]string          `json:"openid"`
}
