package devbroker_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"
)

// TestLoginFormInChromium logs in through the broker's HTML form in a real
// Chromium: a wrong password shows the error, the right one redirects the
// browser to the client's loopback listener with a code that exchanges.
func TestLoginFormInChromium(t *testing.T) {
	if os.Getenv("PBENCH_AUTH_TEST_CHROMIUM") != "1" {
		t.Skip("set PBENCH_AUTH_TEST_CHROMIUM=1 to drive the login form with Chromium")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("PBENCH_AUTH_TEST_CHROMIUM=1 but no chromium: %v", err)
	}
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

	alloc, cancel := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root in a container
	)...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

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
