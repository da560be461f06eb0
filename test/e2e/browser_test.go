//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's chromium; PBENCH_AUTH_CHROMIUM overrides it.
func chromiumPath() string {
	if p := os.Getenv("PBENCH_AUTH_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// browser starts a fresh headless Chromium (its own profile directory, no
// network of its own beyond what the page asks for) and returns a context
// for chromedp actions, valid for a few minutes.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath()),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root in a container
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	// The browser's trail, for a failure: method and address without the
	// query (which carries codes and state).
	chromedp.ListenTarget(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Type == network.ResourceTypeDocument {
			u, _ := url.Parse(e.Request.URL)
			if u != nil {
				u.RawQuery = ""
			}
			t.Logf("browser: %s %v", e.Request.Method, u)
		}
	})
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// location says where the browser is and what it shows, for a failure
// message. Only for pages before the loopback listener: its URL has the code.
func location(ctx context.Context) string {
	var u, text string
	if err := chromedp.Run(ctx, chromedp.Location(&u), chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &text)); err != nil {
		return "(unknown: " + err.Error() + ")"
	}
	if len(text) > 500 {
		text = text[:500]
	}
	return fmt.Sprintf("%s, showing %q", u, text)
}

// reached waits, for at most a minute, until the browser has navigated to
// the host:port of redirectURI (the CLI's loopback listener). On the way it
// submits every page holding a form that matches approve (XPath; "" for
// none): brokers may ask for consent once per hop.
func reached(ctx context.Context, redirectURI, approve string) error {
	want, err := url.Parse(redirectURI)
	if err != nil {
		return err
	}
	submitted := map[string]bool{}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var u string
		if err := chromedp.Run(ctx, chromedp.Location(&u)); err == nil {
			if got, err := url.Parse(u); err == nil && got.Host == want.Host {
				return nil
			}
			var forms []*cdp.Node
			if approve != "" && !submitted[u] &&
				chromedp.Run(ctx, chromedp.Nodes(approve, &forms, chromedp.BySearch, chromedp.AtLeast(0))) == nil && len(forms) > 0 {
				submitted[u] = true
				if err := chromedp.Run(ctx, chromedp.Submit(approve, chromedp.BySearch)); err != nil {
					return fmt.Errorf("approve at %s: %w", location(ctx), err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the browser did not reach %s: it is at %s", want.Host, location(ctx))
}
