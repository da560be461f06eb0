//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// The dashboard tests drive the page that `serve` hosts at /dashboard/ in
// headless Chromium, as a person would: the page runs oidc-client-ts (the
// vendored build), logs in at the broker, exchanges the code itself, and
// calls serve with the token.

// TestDashboardDevBroker: the dashboard on `serve --dev`, whose broker is on
// the same origin. The access tokens live 10 s, so the page renews them by
// itself while the test runs.
func TestDashboardDevBroker(t *testing.T) {
	bin := dashboardPrerequisites(t)
	up := newUpstream(t)
	addr := testutil.ReserveAddr(t)
	serve := startServe(t, bin, "serve --dev", "serve", "--dev", "--listen", addr, "--dev-token-ttl", "10s",
		"--require-role", "/api/v1/admin=ADMIN", "--upstream", up.srv.URL)
	base := "http://" + addr
	waitHTTP(t, "serve --dev", base+"/readyz")

	p := openDashboard(t, base, "/dashboard/")
	p.wantText("#client", "pbench-client")
	p.wantText("#realm", "pbench-server")
	devSignIn := func(user, password string) chromedp.Tasks {
		return chromedp.Tasks{
			chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery),
			chromedp.SendKeys(`input[name=username]`, user, chromedp.ByQuery),
			chromedp.SendKeys(`input[name=password]`, password, chromedp.ByQuery),
			chromedp.Submit(`form#login`, chromedp.ByQuery),
		}
	}

	// A login the broker answers with access_denied (what Keycloak sends
	// when the user cancels): the page says so and stays logged out. The
	// broker is on the page's origin, so the pending login's state is
	// readable from the tab's sessionStorage.
	p.run("start a login", p.pressLogin(), chromedp.WaitVisible(`input[name=username]`, chromedp.ByQuery))
	var state string
	p.run("read the pending state", chromedp.Evaluate(
		`Object.keys(sessionStorage).filter(k => k.startsWith("oidc.") && !k.startsWith("oidc.user:")).map(k => k.slice(5))[0] || ""`, &state))
	if state == "" {
		t.Fatal("no login state in sessionStorage after Log in")
	}
	p.run("deny", chromedp.Navigate(base+"/dashboard/?error=access_denied&error_description=cancelled+by+the+user&state="+url.QueryEscape(state)))
	p.wantMessage("Login cancelled or denied")
	p.wantURL(base + "/dashboard/") // the answer's query is gone from the address bar

	// Log in as admin with the keyboard only.
	p.run("log in as admin", p.pressLogin(), devSignIn("admin", "admin"))
	p.waitLoggedIn("admin", "ADMIN")
	p.wantURL(base + "/dashboard/")
	p.checkTimes()

	// Seed steps 11-13 from the page: the identity, the admin-only path.
	p.callPath("/api/v1/user", true, "200")
	if body := p.text("#call-body"); !strings.Contains(body, `"username": "admin"`) {
		t.Errorf("/api/v1/user answered %s", body)
	}
	p.callPath("/api/v1/admin/datasets", true, "200")
	p.callPath("/api/v1/user", false, "401")

	// The page renews the 10 s token by itself before it expires, then on
	// demand; the renewed token works.
	before := p.storedUser()
	p.waitRenewals(1)
	n := p.renewals()
	p.run("renew now", chromedp.Click(`#renew`, chromedp.ByQuery))
	p.waitRenewals(n + 1)
	after := p.storedUser()
	if after.AccessToken == before.AccessToken || after.AccessToken == "" {
		t.Error("renewal did not replace the access token in sessionStorage")
	}
	p.callPath("/api/v1/admin/datasets", true, "200")

	p.screenshot()
	p.phoneWidth()

	// API keys, through the gateway to a Pbench-shaped key service.
	p.apiKeys(up)

	// Log out: RP-initiated logout at the broker, back to the page, cleared.
	last := p.storedUser()
	p.logout()
	p.callPath("/api/v1/user", true, "401")
	if status, oauthErr := refreshAt(t, base+"/realms/pbench-server/protocol/openid-connect/token", "pbench-client", last.RefreshToken); status != http.StatusBadRequest || oauthErr != "invalid_grant" {
		t.Errorf("the broker answered %d %q to the refresh token after logout, want 400 invalid_grant", status, oauthErr)
	}
	// The broker has no session any more: Log in asks for the password.
	p.run("log in again", p.pressLogin(), chromedp.WaitVisible(`input[name=password]`, chromedp.ByQuery))

	// A user without ADMIN: 403 on the admin path, 200 on /api/v1/user.
	p.run("log in as user", devSignIn("user", "user"))
	p.waitLoggedIn("user", "-ADMIN")
	p.callPath("/api/v1/admin/datasets", true, "403")
	if body := p.text("#call-body"); !strings.Contains(body, "ADMIN") {
		t.Errorf("the 403 body does not name the missing role: %s", body)
	}
	p.callPath("/api/v1/user", true, "200")

	// A refresh token the broker refuses: the page says the session ended.
	p.run("spoil the refresh token", chromedp.Evaluate(`(() => {
		const k = Object.keys(sessionStorage).find(k => k.startsWith("oidc.user:"));
		const u = JSON.parse(sessionStorage.getItem(k));
		u.refresh_token = "not-a-refresh-token"; u.expires_at = 1;
		sessionStorage.setItem(k, JSON.stringify(u));
		return true;
	})()`, nil), chromedp.Reload())
	p.wantMessage("your session there has ended")
	p.wantHidden("#session")

	// The server goes down: the call says so.
	p.noLocalStorage()
	p.noConsoleErrors()
	serve.Kill()
	p.callPath("/api/v1/user", false, "the server cannot be reached")
}

// TestDashboardDex: the dashboard on `serve` in front of Dex as the broker
// (federating to another Dex as the identity provider), on another origin:
// discovery, token and refresh requests cross origins (Dex's
// web.allowedOrigins), and pbench-client is registered with the dashboard's
// redirect URI.
func TestDashboardDex(t *testing.T) {
	bin := dashboardPrerequisites(t)
	need(t, executable(dexBinary()), "no Dex at %s: run test/e2e/dex/build.sh, or set PBENCH_AUTH_DEX", dexBinary())
	up := newUpstream(t)
	addr := testutil.ReserveAddr(t)
	base := "http://" + addr
	broker := startDexPair(t, base)
	// Dex issues refresh tokens only for offline_access.
	startServe(t, bin, "serve", "serve", "--listen", addr, "--issuer", broker, "--client-id", "pbench-client", "--audience", "pbench-client",
		"--dashboard-scope", "openid profile email offline_access",
		"--require-role", "/api/v1/admin=ADMIN", "--upstream", up.srv.URL)
	waitHTTP(t, "serve", base+"/readyz")

	p := openDashboard(t, base, "/dashboard/")
	p.wantText("#issuer", broker)
	approve := `//form[input[@name="approval" and @value="approve"]]`
	signIn := chromedp.Tasks{
		// The broker's page: pick the upstream identity provider, then its
		// password form.
		chromedp.Click(`//a[contains(., "Log in with Upstream IdP")]`, chromedp.BySearch),
		chromedp.WaitVisible(`#login`, chromedp.ByID),
		chromedp.SendKeys(`#login`, aliceEmail, chromedp.ByID),
		chromedp.SendKeys(`#password`, alicePassword, chromedp.ByID),
		chromedp.Click(`#submit-login`, chromedp.ByID),
	}
	// (Dex answers a denied approval with its own error page and never
	// returns to the client, so the denial is tested on the dev broker.)
	p.run("log in at Dex", p.pressLogin(), signIn)
	if err := reached(p.ctx, base+"/dashboard/", approve); err != nil {
		t.Fatal(err)
	}
	// Dex has no roles claim: the identity has none, and the admin path is
	// refused with the same valid token that /api/v1/user accepts.
	p.waitLoggedIn(aliceName, "none")
	p.wantText("#email", aliceEmail)
	p.checkTimes()
	p.callPath("/api/v1/user", true, "200")
	p.callPath("/api/v1/admin/datasets", true, "403")

	// Renewal crosses origins to Dex's token endpoint (and Dex's to the IdP).
	before := p.storedUser()
	if before.RefreshToken == "" {
		t.Fatal("Dex gave the page no refresh token (offline_access)")
	}
	n := p.renewals()
	p.run("renew now", chromedp.Click(`#renew`, chromedp.ByQuery))
	p.waitRenewals(n + 1)
	after := p.storedUser()
	if after.AccessToken == before.AccessToken {
		t.Error("renewal did not replace the access token")
	}
	p.callPath("/api/v1/user", true, "200")

	// Logout at Dex: its confirmation, then back to the page, cleared; the
	// refresh token died with the broker session (refreshTokenLifetime: session).
	p.run("log out", chromedp.Click(`#logout`, chromedp.ByQuery))
	if err := confirmUntil(p.ctx, `//form[@method="post"][button[contains(., "Log Out")]]`, base+"/dashboard/"); err != nil {
		t.Fatal(err)
	}
	p.wantMessage("You are logged out")
	p.wantHidden("#session")
	p.callPath("/api/v1/user", true, "401")
	disco := discovery(t, broker)
	if status, oauthErr := refreshAt(t, disco.TokenEndpoint, "pbench-client", after.RefreshToken); status != http.StatusBadRequest {
		t.Errorf("Dex answered %d %q to the refresh token after logout, want 400", status, oauthErr)
	}
	p.noLocalStorage()
	p.noConsoleErrors()
}

// TestDashboardBrokerUnreachable: serve trusts a broker that does not
// answer; the page loads and says so when Log in is pressed.
func TestDashboardBrokerUnreachable(t *testing.T) {
	bin := dashboardPrerequisites(t)
	addr, dead := testutil.ReserveAddr(t), testutil.ReserveAddr(t) // dead is bound but never listens: connections to it are refused
	base := "http://" + addr
	startServe(t, bin, "serve", "serve", "--listen", addr, "--issuer", "http://"+dead+"/realms/pbench-server")
	waitHTTP(t, "serve", base+"/healthz")
	p := openDashboard(t, base, "/") // without an upstream, / redirects to the dashboard
	p.wantURL(base + "/dashboard/")
	p.run("log in", p.pressLogin())
	p.wantMessage("cannot be reached")
	p.noLocalStorage()
	p.noConsoleErrors()

	// The control: an inline script is refused by the page's CSP, and the
	// refusal is seen as a console problem.
	p.run("inject an inline script", chromedp.Evaluate(
		`(() => { const s = document.createElement("script"); s.textContent = "window.injected = true"; document.body.append(s); return true; })()`, nil))
	var injected bool
	p.run("read window.injected", chromedp.Evaluate(`window.injected === true`, &injected))
	if injected {
		t.Error("an inline script ran: the CSP does not hold")
	}
	deadline := time.Now().Add(time.Minute)
	for !p.reported("Content Security Policy") {
		if time.Now().After(deadline) {
			t.Fatal("the refused inline script was not reported on the console: the console check sees nothing")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reported says whether a console problem mentions part.
func (p *dashboard) reported(part string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, problem := range p.problems {
		if strings.Contains(problem, part) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------

func dashboardPrerequisites(t *testing.T) string {
	t.Helper()
	need(t, executable(chromiumPath()), "no Chromium at %s: apt-get install chromium, or set PBENCH_AUTH_CHROMIUM", chromiumPath())
	_, err := exec.LookPath("curl")
	need(t, err == nil, "no curl (the API key is used with it): apt-get install curl")
	bin, err := buildCLI()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func startServe(t *testing.T, bin, name string, args ...string) *testutil.Process {
	t.Helper()
	return testutil.StartProcess(t, name, exec.Command(bin, args...)) // #nosec G204 -- the binary under test
}

// dashboard is the page in one browser tab, with what its console said.
type dashboard struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu       sync.Mutex
	problems []string
}

// openDashboard opens base+path (the dashboard, or / which redirects there
// when serve has no upstream) in a new browser.
func openDashboard(t *testing.T, base, path string) *dashboard {
	t.Helper()
	p := &dashboard{t: t, ctx: browser(t), base: base}
	chromedp.ListenTarget(p.ctx, func(ev any) {
		var problem string
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				problem = "console." + string(e.Type) + ": " + strings.Join(args, " ")
			}
		case *runtime.EventExceptionThrown:
			problem = "uncaught: " + e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				problem += " " + e.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			// The network's own reports (a 401 or 403 the test asks for,
			// a server the test stopped) are answers, not page errors;
			// everything else at error level is (CSP violations, scripts).
			if e.Entry.Level == cdplog.LevelError && e.Entry.Source != cdplog.SourceNetwork {
				problem = string(e.Entry.Source) + ": " + e.Entry.Text
			}
		}
		if problem != "" {
			p.mu.Lock()
			p.problems = append(p.problems, problem)
			p.mu.Unlock()
		}
	})
	p.run("open the dashboard", cdplog.Enable(), chromedp.EmulateViewport(1100, 900),
		chromedp.Navigate(base+path),
		chromedp.WaitEnabled(`#login`, chromedp.ByQuery))
	return p
}

func (p *dashboard) run(what string, actions ...chromedp.Action) {
	p.t.Helper()
	if err := chromedp.Run(p.ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v (the browser is at %s)", what, err, p.where())
	}
}

// pressLogin presses "Log in" with the keyboard.
func (p *dashboard) pressLogin() chromedp.Action {
	return chromedp.Tasks{
		chromedp.WaitEnabled(`#login`, chromedp.ByQuery),
		chromedp.Focus(`#login`, chromedp.ByQuery),
		chromedp.KeyEvent(kb.Enter),
	}
}

func (p *dashboard) text(sel string) string {
	p.t.Helper()
	var s string
	p.run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return s
}

// waitFor polls the JavaScript condition cond, through navigations, for at
// most a minute (a bound for a page that never gets there, not a
// measurement).
func (p *dashboard) waitFor(what, cond string) {
	p.t.Helper()
	deadline := time.Now().Add(time.Minute)
	var err error
	for time.Now().Before(deadline) {
		var ok bool
		if err = chromedp.Run(p.ctx, chromedp.Evaluate(cond, &ok)); err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	var msg string
	_ = chromedp.Run(p.ctx, chromedp.Evaluate(`document.getElementById("message") ? document.getElementById("message").innerText : ""`, &msg))
	p.t.Fatalf("waiting for %s (last error: %v): the browser is at %s; the page's message: %q", what, err, p.where(), msg)
}

// where is the browser's address without its query (which may hold a code)
// and what the page shows.
func (p *dashboard) where() string {
	var u, text string
	if err := chromedp.Run(p.ctx, chromedp.Location(&u), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text)); err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i] + " (query hidden)"
	}
	if len(text) > 800 {
		text = text[:800]
	}
	return fmt.Sprintf("%s, showing %q", u, text)
}

func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (p *dashboard) wantText(sel, want string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%s to read %q", sel, want),
		fmt.Sprintf(`(document.querySelector(%s) || {}).textContent === %s`, js(sel), js(want)))
}

func (p *dashboard) wantMessage(part string) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("a message saying %q", part), fmt.Sprintf(
		`!document.getElementById("message").hidden && document.getElementById("message-text").textContent.includes(%s)`, js(part)))
}

func (p *dashboard) wantHidden(sel string) {
	p.t.Helper()
	p.waitFor(sel+" hidden", fmt.Sprintf(`document.querySelector(%s).hidden`, js(sel)))
}

func (p *dashboard) wantURL(want string) {
	p.t.Helper()
	p.waitFor("the address "+want, fmt.Sprintf(`location.href === %s`, js(want)))
}

// waitLoggedIn waits for the signed-in section with the identity that the
// server extracted from the token, and checks that its roles include role,
// or, with a role "-ROLE", that they do not ("none" for no role at all).
func (p *dashboard) waitLoggedIn(username, role string) {
	p.t.Helper()
	p.waitFor("the signed-in section", `!document.getElementById("session").hidden`)
	p.wantText("#username", username)
	roles := strings.Split(p.text("#roles"), ", ")
	if without, ok := strings.CutPrefix(role, "-"); ok {
		if slices.Contains(roles, without) {
			p.t.Errorf("%s has the roles %v, want no %s", username, roles, without)
		}
	} else if !slices.Contains(roles, role) {
		p.t.Errorf("%s has the roles %v, want %s", username, roles, role)
	}
}

// checkTimes checks that the access token's and the session's remaining
// times are shown, and that the access token's counts down.
func (p *dashboard) checkTimes() {
	p.t.Helper()
	p.waitFor("the access token's remaining time", `/^\d+:\d\d left$/.test(document.getElementById("token-left").textContent)`)
	first := p.text("#token-left")
	p.waitFor("the remaining time to change", fmt.Sprintf(`document.getElementById("token-left").textContent !== %s`, js(first)))
	if s := p.text("#session-left"); s == "" {
		p.t.Error("the session's remaining time is not shown")
	}
}

// callPath calls path from the page's form and waits for an answer whose
// status line starts with want.
func (p *dashboard) callPath(path string, withToken bool, want string) {
	p.t.Helper()
	p.run("call "+path,
		chromedp.SetValue(`#call-path`, path, chromedp.ByQuery),
		chromedp.Evaluate(fmt.Sprintf(`document.getElementById("call-notoken").checked = %t; document.getElementById("call-status").textContent = ""`, !withToken), nil),
		chromedp.Click(`#call`, chromedp.ByQuery))
	p.waitFor("an answer to "+path, `document.getElementById("call-status").textContent !== ""`)
	if got := p.text("#call-status"); !strings.HasPrefix(got, want) {
		p.t.Errorf("call %s (with token: %t) answered %q, want %s: %s", path, withToken, got, want, p.text("#call-body"))
	}
}

func (p *dashboard) renewals() int {
	p.t.Helper()
	n, err := strconv.Atoi(p.text("#renewals"))
	if err != nil {
		p.t.Fatalf("renewals: %v", err)
	}
	return n
}

func (p *dashboard) waitRenewals(n int) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%d renewals", n), fmt.Sprintf(`Number(document.getElementById("renewals").textContent) >= %d`, n))
}

// storedUser is what oidc-client-ts keeps in the tab's sessionStorage.
type storedUser struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
}

func (p *dashboard) storedUser() storedUser {
	p.t.Helper()
	var raw string
	p.run("read sessionStorage", chromedp.Evaluate(
		`(() => { const k = Object.keys(sessionStorage).find(k => k.startsWith("oidc.user:")); return k ? sessionStorage.getItem(k) : ""; })()`, &raw))
	var u storedUser
	if raw == "" {
		return u
	}
	if err := json.Unmarshal([]byte(raw), &u); err != nil {
		p.t.Fatalf("sessionStorage user: %v", err)
	}
	return u
}

// refreshAt posts a refresh grant as the public client and returns the
// status and the OAuth error.
func refreshAt(t *testing.T, endpoint, clientID, refreshToken string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("refresh grant at %s: %v", endpoint, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var answer struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	return resp.StatusCode, answer.Error
}

type discoveryDoc struct {
	TokenEndpoint string `json:"token_endpoint"`
}

func discovery(t *testing.T, issuer string) discoveryDoc {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, issuer+"/.well-known/openid-configuration", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var d discoveryDoc
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func (p *dashboard) logout() {
	p.t.Helper()
	p.run("log out", chromedp.Click(`#logout`, chromedp.ByQuery))
	p.wantMessage("You are logged out")
	p.wantHidden("#session")
	p.wantURL(p.base + "/dashboard/")
	if u := p.storedUser(); u.AccessToken != "" {
		p.t.Error("tokens still in sessionStorage after logout")
	}
}

func (p *dashboard) noLocalStorage() {
	p.t.Helper()
	var n int
	p.run("count localStorage", chromedp.Evaluate(`localStorage.length`, &n))
	if n != 0 {
		var keys []string
		p.run("list localStorage", chromedp.Evaluate(`Object.keys(localStorage)`, &keys))
		p.t.Errorf("localStorage holds %d items: %v", n, keys)
	}
}

func (p *dashboard) noConsoleErrors() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, problem := range p.problems {
		p.t.Errorf("the page reported an error: %s", problem)
	}
}

// phoneWidth checks that the page fits a phone's width (no sideways
// scrolling), then goes back to the desktop size.
func (p *dashboard) phoneWidth() {
	p.t.Helper()
	var scroll int
	p.run("phone width", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile),
		chromedp.Evaluate(`document.documentElement.scrollWidth`, &scroll))
	if scroll > 360 {
		p.t.Errorf("at 360 px the page is %d px wide: it scrolls sideways", scroll)
	}
	p.run("desktop width", chromedp.EmulateViewport(1100, 900))
}

// screenshot writes the logged-in page to $PBENCH_AUTH_DASHBOARD_SCREENSHOT
// when set (scripts/dashboard-screenshot.sh sets it to docs/dashboard.png).
func (p *dashboard) screenshot() {
	p.t.Helper()
	out := os.Getenv("PBENCH_AUTH_DASHBOARD_SCREENSHOT")
	if out == "" {
		return
	}
	var png []byte
	p.run("screenshot", chromedp.Evaluate(`document.getElementById("message").hidden = true`, nil),
		chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Clean(out), png, 0o644); err != nil { // #nosec G306 -- a picture for the docs
		p.t.Fatal(err)
	}
	p.t.Logf("wrote %s", out)
}

// apiKeys creates a key in the page (shown once), uses it with curl, lists
// it, and deletes it. The key endpoints are serve's own, in gateway mode too:
// the Pbench-shaped upstream also answers them (as Pbench's server would), so
// a key request that reached it would show there.
func (p *dashboard) apiKeys(up *upstream) {
	p.t.Helper()
	p.waitFor("the API keys section", `!document.getElementById("keys").hidden`)
	p.run("create a key",
		chromedp.SendKeys(`#key-label`, "ci-runner", chromedp.ByQuery),
		chromedp.Click(`#key-create`, chromedp.ByQuery))
	p.waitFor("the new key", `!document.getElementById("key-new").hidden && document.getElementById("key-value").value !== ""`)
	var key string
	p.run("read the key", chromedp.Value(`#key-value`, &key, chromedp.ByQuery))
	if up.hasKey(key) || up.keyCount() != 0 {
		p.t.Fatal("the gateway passed the key request to the upstream: serve must answer /api/v1/key itself")
	}
	// serve's own key: it carries the user's identity, to curl too.
	if code := curlStatus(p.t, p.base+"/api/v1/user", key); code != "200" {
		p.t.Errorf("curl with the key the page created: %s, want 200", code)
	}
	p.waitFor("the key in the list", `[...document.querySelectorAll("#key-rows td:first-child")].some(td => td.textContent === "ci-runner")`)
	// The default expiry (90 days) reached the server and shows in the list.
	if exp := p.text("#key-rows td:nth-child(5)"); exp == "never" || exp == "" {
		p.t.Errorf("the key's expiry shows %q, want the date 90 days from now", exp)
	}
	if strings.Contains(p.text("#key-table"), key) {
		p.t.Error("the list of keys shows the key itself")
	}
	p.run("copy", chromedp.Click(`#key-copy`, chromedp.ByQuery))
	p.waitFor("the copy's outcome", `document.getElementById("key-copied").textContent !== ""`)
	p.run("done", chromedp.Click(`#key-done`, chromedp.ByQuery))
	p.wantHidden("#key-new")
	var nodes []*cdp.Node
	p.run("find the delete button", chromedp.Nodes(`#key-rows button.danger`, &nodes, chromedp.ByQueryAll))
	if len(nodes) != 1 {
		p.t.Fatalf("%d delete buttons, want 1", len(nodes))
	}
	// Two presses: the first only asks for confirmation.
	p.run("delete, once", chromedp.Click(`#key-rows button.danger`, chromedp.ByQuery))
	if code := curlStatus(p.t, p.base+"/api/v1/user", key); code != "200" {
		p.t.Errorf("one press deleted the key: curl with it answers %s, want 200", code)
	}
	p.run("delete, twice", chromedp.Click(`#key-rows button.danger`, chromedp.ByQuery))
	p.waitFor("the empty list", `document.getElementById("key-rows").children.length === 0`)
	if code := curlStatus(p.t, p.base+"/api/v1/user", key); code != "401" {
		p.t.Errorf("curl with the deleted key: %s, want 401", code)
	}
}

// curlStatus calls u with curl and the key as a Bearer token (given on
// stdin, not on curl's command line) and returns the HTTP status.
func curlStatus(t *testing.T, u, key string) string {
	t.Helper()
	cmd := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "@-", u)
	cmd.Stdin = strings.NewReader("Authorization: Bearer " + key + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %s: %v", u, err)
	}
	return string(out)
}

// confirmUntil submits, on each page the browser shows, the form f (XPath)
// when there is one (a broker's "Do you want to log out?"), until the
// browser is at want, for at most a minute.
func confirmUntil(ctx context.Context, f, want string) error {
	submitted := map[string]bool{}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var u string
		if err := chromedp.Run(ctx, chromedp.Location(&u)); err == nil {
			if strings.HasPrefix(u, want) {
				return nil
			}
			var nodes []*cdp.Node
			if !submitted[u] && chromedp.Run(ctx, chromedp.Nodes(f, &nodes, chromedp.BySearch, chromedp.AtLeast(0))) == nil && len(nodes) > 0 {
				submitted[u] = true
				if err := chromedp.Run(ctx, chromedp.Submit(f, chromedp.BySearch)); err != nil {
					return fmt.Errorf("submit %s at %s: %w", f, location(ctx), err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the browser did not reach %s: it is at %s", want, location(ctx))
}
