// Package dashboard is the browser dashboard that `pbench-auth serve` hosts
// at /dashboard/: the seed's "Pbench-Dashboard" role played by a page. It
// asks the server for the broker (GET /api/v1/endpoints, seed steps 1–2),
// logs the user in at the broker with the authorization code flow, PKCE S256,
// state and nonce (steps 3–8), exchanges the code at the broker's token
// endpoint itself as a public client (steps 9–10), and calls the server's
// restricted endpoints with the access token (steps 11–13). It renews the
// token with the refresh token, logs out at the broker (RP-initiated logout),
// and manages API keys where the server has them.
//
// The OpenID Connect work in the page is done by oidc-client-ts, whose
// shipped browser build is vendored under assets/vendor (see
// scripts/vendor-oidc-client-ts.sh). Everything is embedded: plain HTML, CSS
// and ES modules, no inline script, served with a Content-Security-Policy
// that allows scripts from this origin only and network requests to this
// origin and the broker's. Tokens stay in the tab's sessionStorage (never
// localStorage), so they end with the tab.
//
// The broker must know the dashboard as a client: its address
// <origin>/dashboard/ as a redirect URI and post-logout redirect URI, and
// <origin> as a web origin (CORS on the token endpoint) when the broker is on
// another origin. docs/operator-guide.md shows the settings for Keycloak and
// Dex.
package dashboard

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Path is where the dashboard is mounted.
const Path = "/dashboard/"

// DefaultScope is what the page asks the broker for: enough for an ID token
// with the user's name and email. Brokers that issue refresh tokens only for
// offline_access (Dex) need it added, see Options.Scope.
const DefaultScope = "openid profile email"

//go:embed assets
var assets embed.FS

// Options configure the dashboard.
type Options struct {
	// Issuer is the broker's issuer URL. Its origin is the only one besides
	// the dashboard's own that the page may send requests to (the broker's
	// discovery, token, revocation and end-session endpoints must be there).
	// Required.
	Issuer string
	// Scope is the space-separated scope the page requests. Default
	// DefaultScope. DANGER: with Keycloak, offline_access turns the browser's
	// refresh token into an offline token that outlives the logout.
	Scope string
	// Paths are suggested in the page's "Call the server" field, e.g.
	// /api/v1/user and the prefixes that need a role. Default /api/v1/user.
	Paths []string
}

// Handler serves the dashboard's files under Path (the request's full path
// is expected, as mounted with mux.Handle(Path, h)); GET and HEAD only.
func Handler(opts Options) (http.Handler, error) {
	issuer, err := url.Parse(opts.Issuer)
	if err != nil || (issuer.Scheme != "http" && issuer.Scheme != "https") || issuer.Host == "" {
		return nil, fmt.Errorf("dashboard: the issuer %q is not an absolute http(s) URL", opts.Issuer)
	}
	if opts.Scope == "" {
		opts.Scope = DefaultScope
	}
	if len(opts.Paths) == 0 {
		opts.Paths = []string{"/api/v1/user"}
	}
	if !slices.Contains(strings.Fields(opts.Scope), "openid") {
		return nil, errors.New("dashboard: the scope must contain openid: the page logs in with OpenID Connect")
	}
	config, err := json.Marshal(map[string]any{"scope": opts.Scope, "paths": opts.Paths})
	if err != nil {
		return nil, err
	}
	root, err := fs.Sub(assets, "assets")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix(strings.TrimSuffix(Path, "/"), http.FileServerFS(root))
	csp := contentSecurityPolicy(issuer.Scheme + "://" + issuer.Host)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		// The page is opened with ?code=...&state=... after login: no
		// Referer may carry them to anything the page loads.
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, r.Method+" is not allowed here: use GET", http.StatusMethodNotAllowed)
			return
		}
		switch p := r.URL.Path; {
		case p == Path+"config.json":
			h.Set("Content-Type", "application/json")
			_, _ = w.Write(config)
		case p != Path && strings.HasSuffix(p, "/"):
			http.NotFound(w, r) // no directory listings
		default:
			files.ServeHTTP(w, r)
		}
	}), nil
}

// contentSecurityPolicy allows scripts and styles from the dashboard's own
// origin only (no inline script or style, no eval), network requests to it
// and to the broker's origin, no frames, no plugins, and forms that post
// only here.
func contentSecurityPolicy(brokerOrigin string) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self'",
		"connect-src 'self' " + brokerOrigin,
		"form-action 'self'",
		"frame-ancestors 'none'",
		"base-uri 'none'",
	}, "; ")
}
