package testutil

import "github.com/chromedp/chromedp"

// ChromiumFlags are the flags every Chromium of the tests runs with:
// headless, no sandbox (CI runs as root in a container), and none of the
// browser's own network traffic (updates, sync, QUIC). The caller adds
// ExecPath and, if it wants one of its own, UserDataDir (without one,
// chromedp makes a fresh profile directory and removes it afterwards).
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
