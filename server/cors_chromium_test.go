package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// TestCORSInChromium: a page on another origin calls /api/v1/user with
// fetch and a Bearer token, in a real Chromium. From the allowed origin the
// preflight and the call succeed (200, the identity readable); from any
// other origin the browser blocks the answer, even on a gateway path whose
// upstream allows any origin.
func TestCORSInChromium(t *testing.T) {
	if os.Getenv("PBENCH_AUTH_TEST_CHROMIUM") != "1" {
		t.Skip("set PBENCH_AUTH_TEST_CHROMIUM=1 to run CORS in Chromium")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("PBENCH_AUTH_TEST_CHROMIUM=1 but no chromium: %v", err)
	}
	page := func() *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<!doctype html><title>dashboard</title><p>dashboard</p>"))
		}))
		t.Cleanup(s.Close)
		return s
	}
	allowed, other := page(), page()

	_, h := newPbenchGateway(t, func(c *Config) {
		c.Anonymous = []string{"/api/v1/datasets"}
		c.CORSOrigins = []string{allowed.URL}
	})
	ti := h.ti
	token := ti.token(h.clock.Now(), nil)

	// A fresh profile, removed without failing the test: Chromium's helper
	// processes may still write to it for a moment after the browser is
	// killed, and t.TempDir would report that.
	profile, err := os.MkdirTemp("", "pbench-auth-cors-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(profile) })
	alloc, cancel := chromedp.NewExecAllocator(t.Context(),
		append(testutil.ChromiumFlags(), chromedp.ExecPath(chromium), chromedp.UserDataDir(profile))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	// fetchFrom loads the page of origin and runs fetch(url) there; the
	// result is "STATUS BODY" or "blocked: ERROR".
	fetchFrom := func(origin, url, token string) string {
		t.Helper()
		headers, _ := json.Marshal(map[string]string{})
		if token != "" {
			headers, _ = json.Marshal(map[string]string{"Authorization": "Bearer " + token})
		}
		target, _ := json.Marshal(url)
		js := `fetch(` + string(target) + `, {headers: ` + string(headers) + `})
			.then(r => r.text().then(b => r.status + " " + b))
			.catch(e => "blocked: " + e)`
		var res string
		err := chromedp.Run(ctx,
			chromedp.Navigate(origin),
			chromedp.WaitVisible(`p`),
			chromedp.Evaluate(js, &res, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }),
		)
		if err != nil {
			t.Fatalf("chromium: %v", err)
		}
		return res
	}

	user := h.http.URL + "/api/v1/user"
	if got := fetchFrom(allowed.URL, user, token); !strings.HasPrefix(got, "200 ") || !strings.Contains(got, `"username":"alice"`) {
		t.Errorf("allowed origin, /api/v1/user: %q, want 200 and the identity", got)
	}
	if got := fetchFrom(other.URL, user, token); !strings.HasPrefix(got, "blocked: TypeError") {
		t.Errorf("other origin, /api/v1/user: %q, want the browser to block it", got)
	}
	if got := fetchFrom(allowed.URL, user, ""); !strings.HasPrefix(got, "401 ") {
		t.Errorf("allowed origin without a token: %q, want a readable 401", got)
	}
	public := h.http.URL + "/api/v1/datasets/public-ds"
	if got := fetchFrom(allowed.URL, public, ""); !strings.HasPrefix(got, "200 ") {
		t.Errorf("allowed origin, anonymous gateway read: %q", got)
	}
	if got := fetchFrom(other.URL, public, ""); !strings.HasPrefix(got, "blocked: TypeError") {
		t.Errorf("other origin, gateway path whose upstream allows any origin: %q, want blocked", got)
	}
}
