package devbroker_test

import (
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// TestLoginFormInChromium logs in through the broker's HTML form in a real
// Chromium: a wrong password shows the error, the right one redirects the
// browser to the client's loopback listener with a code that exchanges.
func TestLoginFormInChromium(t *testing.T) {
	chromium := testutil.RequireChromium(t, "drive the login form with Chromium")
	tb := newTestBroker(t)

	// The client's loopback listener, like oauth2cli's.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	callbacks := make(chan url.Values, 1)
	cb := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case callbacks <- r.URL.Query():
		default:
		}
		_, _ = w.Write([]byte("logged in"))
	})}
	go func() { _ = cb.Serve(ln) }()
	t.Cleanup(func() { _ = cb.Close() })

	conf := tb.oauth2Config()
	conf.RedirectURL = "http://" + ln.Addr().String() + "/callback"
	verifier := oauth2.GenerateVerifier()
	authURL := tb.authURL(conf, verifier, "chromium-state", "n")

	ctx := testutil.Browser(t, chromium, 60*time.Second)

	var errText string
	err = chromedp.Run(ctx,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(`input[name=username]`),
		chromedp.SendKeys(`input[name=username]`, "admin"),
		chromedp.SendKeys(`input[name=password]`, "wrong"),
		chromedp.Submit(`#login`),
		chromedp.WaitVisible(`#error`),
		chromedp.Text(`#error`, &errText),
	)
	if err != nil {
		t.Fatalf("chromium, wrong password: %v", err)
	}
	if !strings.Contains(errText, "Invalid username or password") {
		t.Errorf("error shown = %q", errText)
	}
	select {
	case q := <-callbacks:
		t.Fatalf("a wrong password reached the client: %v", q)
	default:
	}

	err = chromedp.Run(ctx,
		chromedp.SendKeys(`input[name=password]`, "admin-pw"), // the user name is kept in the form
		chromedp.Submit(`#login`),
	)
	if err != nil {
		t.Fatalf("chromium, right password: %v", err)
	}
	var q url.Values
	select {
	case q = <-callbacks:
	case <-ctx.Done():
		t.Fatal("the browser never reached the client's loopback listener")
	}
	if q.Get("state") != "chromium-state" || q.Get("code") == "" {
		t.Fatalf("callback query = %v", q)
	}
	if _, err := conf.Exchange(tb.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatalf("exchange of the code Chromium delivered: %v", err)
	}
}
