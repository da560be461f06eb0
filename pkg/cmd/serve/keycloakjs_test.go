package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
)

// keycloakJS is where scripts/install-deps.sh installs keycloak-js (npm ci
// of test/keycloak-js, integrity checked), by major version.
func keycloakJS(t *testing.T) map[string]string {
	t.Helper()
	cache := os.Getenv("PBENCH_AUTH_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "pbench-auth")
	}
	mods := filepath.Join(cache, "keycloak-js", "node_modules")
	files := map[string]string{
		"21": filepath.Join(mods, "keycloak-js-21", "dist", "keycloak.js"), // UMD: window.Keycloak
		"26": filepath.Join(mods, "keycloak-js-26", "lib", "keycloak.js"),  // ES module
	}
	for v, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("keycloak-js %s is not installed (%v): run scripts/install-deps.sh", v, err)
		}
	}
	return files
}

// appPage is a dashboard-like page on its own origin: it loads keycloak-js
// and initializes it as Pbench's dashboard does (mode "dashboard":
// check-sso with the login status iframe, no PKCE) or as a strict SPA does
// (mode "pkce": login-required with S256), then shows the outcome in
// #status, with the classes "done" and "load-N" (N from the query) once
// init has settled. With after=logout it only checks for a session.
var appPage = template.Must(template.New("app").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>keycloak-js {{.Version}}</title></head>
<body>
<p id="status">loading</p>
{{if eq .Version "21"}}<script src="/kc/21/keycloak.js"></script>{{end}}
<script type="module">
{{if eq .Version "21"}}const Keycloak = window.Keycloak;{{else}}import Keycloak from "/kc/{{.Version}}/keycloak.js";{{end}}
const q = new URLSearchParams(location.search);
const kc = new Keycloak({url: {{.Server}}, realm: {{.Realm}}, clientId: {{.Client}}});
window.kc = kc;
let opts = {onLoad: "login-required", pkceMethod: "S256"};
if (q.get("mode") === "dashboard") {
  opts = {onLoad: "check-sso", checkLoginIframe: true};
}
if (q.get("after") === "logout") {
  opts = {onLoad: "check-sso", checkLoginIframe: false};
}
function show(result) {
  const el = document.getElementById("status");
  el.textContent = JSON.stringify(result);
  el.className = "done load-" + (q.get("load") || "0");
}
kc.init(opts).then(
  (authenticated) => show({
    authenticated,
    sid: kc.sessionId || "",
    user: kc.tokenParsed ? kc.tokenParsed.preferred_username : "",
    refreshTyp: kc.refreshTokenParsed ? kc.refreshTokenParsed.typ : "",
    refreshExp: kc.refreshTokenParsed ? kc.refreshTokenParsed.exp : 0,
    statusIframe: !!document.querySelector('iframe[title="keycloak-session-iframe"]'),
  }),
  (err) => show({error: String((err && (err.message || err.error)) || err)}));
</script>
</body>
</html>
`))

type kcResult struct {
	Authenticated bool   `json:"authenticated"`
	SID           string `json:"sid"`
	User          string `json:"user"`
	RefreshTyp    string `json:"refreshTyp"`
	RefreshExp    int64  `json:"refreshExp"`
	StatusIframe  bool   `json:"statusIframe"` // the login status iframe is in use
	Error         string `json:"error"`
}

// TestKeycloakJS drives Keycloak's own JavaScript adapter, as Pbench's
// dashboard uses it (21.1.2, what its ^21.0.0 resolves to) and the current
// 26.x, in headless Chromium against serve --dev, from a page on another
// origin: log in through the broker's form, call /api/v1/user with the
// token, updateToken(-1), reload within the session (no form), logout()
// (the session's refresh token is refused afterwards). The page is on
// another port of the same host (same site: the login status iframe sees
// the session) and, for the dashboard's options, also on another site
// (keycloak-js falls back to redirects).
func TestKeycloakJS(t *testing.T) {
	if os.Getenv("PBENCH_AUTH_TEST_CHROMIUM") != "1" {
		t.Skip("set PBENCH_AUTH_TEST_CHROMIUM=1 to run keycloak-js in Chromium")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("PBENCH_AUTH_TEST_CHROMIUM=1 but no chromium: %v", err)
	}
	scripts := keycloakJS(t)

	// The dashboard's origin: another port, so another origin than serve's.
	var serverBase string
	pages := http.NewServeMux()
	pages.HandleFunc("GET /kc/{version}/keycloak.js", func(w http.ResponseWriter, r *http.Request) {
		f, ok := scripts[r.PathValue("version")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript")
		http.ServeFile(w, r, f)
	})
	pages.HandleFunc("GET /app/{version}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = appPage.Execute(w, map[string]string{
			"Version": r.PathValue("version"), "Server": serverBase, "Realm": "pbench-server", "Client": "pbench-client",
		})
	})
	app := httptest.NewServer(pages)
	t.Cleanup(app.Close)

	// The same page named localhost is on another site than serve
	// (127.0.0.1): over plain http the broker's cookies do not reach its
	// iframes, keycloak-js's third-party cookie check says "unsupported",
	// and it falls back to redirects.
	otherSite := strings.Replace(app.URL, "127.0.0.1", "localhost", 1)
	base, issuer, _ := startDev(t, "--dev-web-origin", app.URL, "--dev-redirect-uri", app.URL+"/app/*",
		"--dev-web-origin", otherSite)
	serverBase = base
	// What Pbench's dashboard reads to configure keycloak-js.
	var ep struct {
		OpenID struct{ Server, Realm, Client string } `json:"openid"`
	}
	getJSON(t, base+"/api/v1/endpoints", "", http.StatusOK, &ep)
	if ep.OpenID.Server != base || ep.OpenID.Realm != "pbench-server" || ep.OpenID.Client != "pbench-client" {
		t.Fatalf("endpoints openid = %+v", ep.OpenID)
	}

	for _, version := range []string{"21", "26"} {
		for _, mode := range []string{"dashboard", "pkce"} {
			t.Run(version+"/"+mode, func(t *testing.T) {
				kcScenario(t, chromium, app.URL+"/app/"+version+"?mode="+mode, base, issuer)
			})
		}
		t.Run(version+"/dashboard-other-site", func(t *testing.T) {
			kcScenario(t, chromium, otherSite+"/app/"+version+"?mode=dashboard", base, issuer)
		})
	}
}

func kcScenario(t *testing.T, chromium, page, base, issuer string) {
	ctx := kcBrowser(t, chromium)

	t.Log("keycloak-js: log in")
	// 1. Log in through the broker's form.
	if err := chromedp.Run(ctx, chromedp.Navigate(page+"&load=1")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page, "mode=dashboard") {
		// check-sso without a session: not logged in, no form; the
		// dashboard's login button then calls login({redirectUri}).
		if res := kcStatus(t, ctx, "load-1"); res.Authenticated || res.Error != "" {
			t.Fatalf("check-sso without a session = %+v, want not authenticated, no error", res)
		}
		if err := chromedp.Run(ctx, chromedp.Evaluate(`setTimeout(() => kc.login({redirectUri: location.href}), 0); true`, nil)); err != nil {
			t.Fatal(err)
		}
	}
	err := chromedp.Run(ctx,
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, "admin"),
		chromedp.SendKeys(`input[name=password]`, "admin"),
		chromedp.Submit(`#login`),
	)
	if err != nil {
		t.Fatalf("the broker's login form: %v", err)
	}
	res := kcStatus(t, ctx, "load-1")
	if !res.Authenticated || res.Error != "" || res.User != "admin" || res.SID == "" {
		t.Fatalf("after the login: %+v, want admin authenticated with a session", res)
	}
	// The session is watched by the login status iframe (keycloak-js's
	// default) when the broker's cookies reach it (same site), not
	// otherwise.
	if wantIframe := strings.HasPrefix(page, "http://127.0.0.1:"); res.StatusIframe != wantIframe {
		t.Errorf("login status iframe in use: %v, want %v", res.StatusIframe, wantIframe)
	}
	if res.RefreshTyp != "Refresh" || res.RefreshExp <= time.Now().Unix() {
		t.Errorf("refreshTokenParsed: typ %q, exp %d; want a Refresh token with an exp ahead", res.RefreshTyp, res.RefreshExp)
	}

	t.Log("keycloak-js: call /api/v1/user")
	// 2. The token is accepted by the server.
	token, refresh := kcTokens(t, ctx)
	var id server.Identity
	getJSON(t, base+"/api/v1/user", token, http.StatusOK, &id)
	if id.Username != "admin" {
		t.Errorf("/api/v1/user = %+v", id)
	}

	t.Log("keycloak-js: updateToken(-1)")
	// 3. updateToken(-1) refreshes from the page (CORS), and the new token
	// is accepted; the rotated refresh token is stale.
	var refreshed bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`kc.updateToken(-1)`, &refreshed, awaitPromise)); err != nil {
		t.Fatalf("updateToken(-1): %v", err)
	}
	token2, refresh2 := kcTokens(t, ctx)
	if !refreshed || token2 == token || refresh2 == refresh {
		t.Fatalf("updateToken(-1) = %v, new token %v, new refresh token %v", refreshed, token2 != token, refresh2 != refresh)
	}
	getJSON(t, base+"/api/v1/user", token2, http.StatusOK, nil)
	if status, e := refreshGrant(t, issuer, refresh); status != http.StatusBadRequest || e != "invalid_grant: Stale token" {
		t.Errorf("reuse of the rotated refresh token: %d %s, want 400 invalid_grant: Stale token", status, e)
	}

	t.Log("keycloak-js: reload")
	// 4. A reload within the session logs in again without the form (the
	// test types nothing: a form would stop it here).
	if err := chromedp.Run(ctx, chromedp.Navigate(page+"&load=2")); err != nil {
		t.Fatal(err)
	}
	again := kcStatus(t, ctx, "load-2")
	if !again.Authenticated || again.Error != "" || again.SID != res.SID {
		t.Fatalf("reload within the session = %+v, want authenticated in session %s", again, res.SID)
	}
	_, refresh3 := kcTokens(t, ctx)

	t.Log("keycloak-js: logout()")
	// 5. logout() ends the session at the broker: back on the page, no
	// session is found, and the session's refresh token is refused.
	logout := fmt.Sprintf(`setTimeout(() => kc.logout({redirectUri: %q}), 0); true`, page+"&after=logout&load=3")
	if err := chromedp.Run(ctx, chromedp.Evaluate(logout, nil)); err != nil {
		t.Fatal(err)
	}
	if after := kcStatus(t, ctx, "load-3"); after.Authenticated || after.Error != "" {
		t.Fatalf("after logout() = %+v, want not authenticated", after)
	}
	for _, rt := range []string{refresh2, refresh3} {
		if status, e := refreshGrant(t, issuer, rt); status != http.StatusBadRequest || !strings.HasPrefix(e, "invalid_grant") {
			t.Errorf("refresh after logout(): %d %s, want 400 invalid_grant", status, e)
		}
	}
}

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// kcBrowser starts a fresh headless Chromium with the flags of the
// end-to-end suite.
func kcBrowser(t *testing.T, chromium string) context.Context {
	t.Helper()
	// Without UserDataDir, chromedp gives the browser a fresh profile
	// directory and removes it once the browser has exited.
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(testutil.ChromiumFlags(), chromedp.ExecPath(chromium))...)
	browser, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(browser, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// kcStatus waits for the page of load to settle and returns its outcome.
func kcStatus(t *testing.T, ctx context.Context, load string) kcResult {
	t.Helper()
	var text, where string
	err := chromedp.Run(ctx, chromedp.WaitVisible(`#status.done.`+load), chromedp.Text(`#status`, &text))
	if err != nil {
		_ = chromedp.Run(context.WithoutCancel(ctx), chromedp.Location(&where))
		if u, perr := url.Parse(where); perr == nil {
			u.RawQuery, u.Fragment = "", "" // they may carry codes
			where = u.String()
		}
		t.Fatalf("the page never settled (%s): %v", where, err)
	}
	var res kcResult
	if err := json.Unmarshal([]byte(text), &res); err != nil {
		t.Fatalf("status %q: %v", text, err)
	}
	return res
}

func kcTokens(t *testing.T, ctx context.Context) (token, refresh string) {
	t.Helper()
	if err := chromedp.Run(ctx, chromedp.Evaluate(`kc.token`, &token), chromedp.Evaluate(`kc.refreshToken`, &refresh)); err != nil {
		t.Fatal(err)
	}
	return token, refresh
}

// refreshGrant posts a refresh token as keycloak-js does and returns the
// status and "error: description".
func refreshGrant(t *testing.T, issuer, refresh string) (int, string) {
	t.Helper()
	resp, err := http.PostForm(issuer+"/protocol/openid-connect/token", url.Values{
		"grant_type": {"refresh_token"}, "client_id": {"pbench-client"}, "refresh_token": {refresh},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var e struct{ Error, ErrorDescription string }
	_ = json.NewDecoder(resp.Body).Decode(&struct {
		Error            *string `json:"error"`
		ErrorDescription *string `json:"error_description"`
	}{&e.Error, &e.ErrorDescription})
	if e.Error == "" {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, e.Error + ": " + e.ErrorDescription
}
