package testutil

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumFlags are the flags every Chromium of the tests runs with:
// headless, no sandbox (CI runs as root in a container), and none of the
// browser's own network traffic (updates, sync, QUIC). Browser adds
// ExecPath and a profile directory of its own.
func ChromiumFlags() []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
}

// RequireChromium skips t unless PBENCH_AUTH_TEST_CHROMIUM=1 (what says
// why) and returns the browser to run: $PBENCH_AUTH_CHROMIUM, else chromium
// on PATH. With the variable set, a missing browser fails t.
func RequireChromium(t testing.TB, what string) string {
	t.Helper()
	if os.Getenv("PBENCH_AUTH_TEST_CHROMIUM") != "1" {
		t.Skip("set PBENCH_AUTH_TEST_CHROMIUM=1 to " + what)
	}
	return ChromiumPath(t)
}

// ChromiumPath is $PBENCH_AUTH_CHROMIUM, else chromium on PATH; t fails
// when there is none.
func ChromiumPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("PBENCH_AUTH_CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium to run (install Debian's chromium, or set PBENCH_AUTH_CHROMIUM): %v", err)
	}
	return p
}

// Browser starts a fresh headless Chromium (ChromiumFlags, a new profile
// directory) and returns a context for chromedp actions that ends after
// timeout. At cleanup the browser is closed through the protocol first, so
// that its helper processes stop writing to the profile before it is
// removed; the kill remains for a browser that no longer answers.
func Browser(t testing.TB, chromium string, timeout time.Duration, opts ...chromedp.ContextOption) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "pbench-auth-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		append(ChromiumFlags(), chromedp.ExecPath(chromium), chromedp.UserDataDir(profile))...)
	browser, cancelCtx := chromedp.NewContext(alloc, opts...)
	ctx, cancelTimeout := context.WithTimeout(browser, timeout)
	t.Cleanup(func() {
		_ = chromedp.Cancel(browser)
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		_ = os.RemoveAll(profile) // best effort: a killed browser's helpers may still write
	})
	return ctx
}
