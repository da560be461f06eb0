//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
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
	opts := append(testutil.ChromiumFlags(), chromedp.ExecPath(chromiumPath()), chromedp.UserDataDir(t.TempDir()))
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
		// Close the browser through the protocol first: it then stops its
		// helper processes and finishes writing its profile before it
		// exits. Killed instead, its helpers may still be writing into the
		// profile directory while t.TempDir removes it. The kill remains
		// for a browser that no longer answers.
		_ = chromedp.Cancel(ctx)
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

// urlCatcher returns a --browser-command that hands the URL the CLI opens
// to the test instead of a browser (a script writing it to a file), and
// caught, which waits for that URL, at most a minute, and returns it.
func urlCatcher(t *testing.T) (command string, caught func() string) {
	t.Helper()
	dir := t.TempDir()
	script, file := filepath.Join(dir, "browser"), filepath.Join(dir, "url")
	body := fmt.Sprintf("#!/bin/sh\nprintf '%%s' \"$1\" > %[1]q.tmp && mv %[1]q.tmp %[1]q\n", file)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil { // #nosec G306 -- the test's own executable
		t.Fatal(err)
	}
	return script, func() string {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if b, err := os.ReadFile(file); err == nil { // #nosec G304 -- the test's own file
				return string(b)
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("the CLI did not open a URL with --browser-command")
		return ""
	}
}

// endSession opens endURL in the browser that logged in (its cookies name
// the session) and, for at most a minute, submits every page holding a form
// matching confirm (XPath), until a page matches done (XPath): a broker may
// pass the logout on to its upstream identity provider, which asks again.
func endSession(ctx context.Context, endURL, confirm, done string) error {
	if err := chromedp.Run(ctx, chromedp.Navigate(endURL)); err != nil {
		return fmt.Errorf("open %s: %w", endURL, err)
	}
	submitted := map[string]bool{}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		var u string
		var nodes []*cdp.Node
		if err := chromedp.Run(ctx, chromedp.Location(&u)); err == nil {
			if chromedp.Run(ctx, chromedp.Nodes(done, &nodes, chromedp.BySearch, chromedp.AtLeast(0))) == nil && len(nodes) > 0 {
				return nil
			}
			if !submitted[u] && chromedp.Run(ctx, chromedp.Nodes(confirm, &nodes, chromedp.BySearch, chromedp.AtLeast(0))) == nil && len(nodes) > 0 {
				submitted[u] = true
				if err := chromedp.Run(ctx, chromedp.Submit(confirm, chromedp.BySearch)); err != nil {
					return fmt.Errorf("confirm the logout at %s: %w", location(ctx), err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("the logout did not finish: the browser is at %s", location(ctx))
}
