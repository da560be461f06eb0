//go:build unix

package browser_test

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/browser"
)

// recorder is a "browser" script that writes its arguments, one per line,
// into a FIFO; argv's read blocks until it has.
func recorder(t *testing.T) (script string, argv func() []string) {
	t.Helper()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "opened")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	script = filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > '"+fifo+"'\n"), 0o700); err != nil { // #nosec G306 -- an executable test script
		t.Fatal(err)
	}
	return script, func() []string {
		f, err := os.Open(fifo) // #nosec G304 -- the test's own FIFO
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		var args []string
		for sc := bufio.NewScanner(f); sc.Scan(); {
			args = append(args, sc.Text())
		}
		return args
	}
}

// hostile are URLs a hostile or broken broker could hand the CLI to open.
var hostile = []string{
	"--gpu-launcher=/bin/sh -c id", "-incognito", "--remote-debugging-port=9222",
	"file:///etc/shadow", "javascript:alert(1)", "data:text/html,<script>x</script>",
	"http://evil.example.com/", "https://user:pw@sso.example.com/auth",
}

// TestOpenChecksTheURL runs the system opener ($BROWSER) for real: only a
// checked URL reaches it, as its only argument.
func TestOpenChecksTheURL(t *testing.T) {
	script, argv := recorder(t)
	t.Setenv("BROWSER", script)
	for _, bad := range hostile {
		if err := browser.Open(bad); err == nil || !strings.Contains(err.Error(), "refusing to open") {
			t.Errorf("%q: %v, want a refusal", bad, err)
		}
	}
	const good = "http://127.0.0.1:8080/realms/pbench-server/device"
	if err := browser.Open(good); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(argv(), "|"); got != good {
		t.Errorf("argv %q", got)
	}
}

// TestCommandChecksTheURL runs --browser-command for real: the command gets
// a checked URL as its last argument, or is not run at all.
func TestCommandChecksTheURL(t *testing.T) {
	script, argv := recorder(t)
	open, err := browser.Command(script + " --new-tab")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range hostile {
		if err := open(bad); err == nil || !strings.Contains(err.Error(), "refusing to open") {
			t.Errorf("%q: %v, want a refusal", bad, err)
		}
	}
	if err := open("https://sso.example.com/a uth?x=1"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(argv(), "|"); got != "--new-tab|https://sso.example.com/a%20uth?x=1" {
		t.Errorf("argv %q", got)
	}
}
