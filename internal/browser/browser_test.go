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

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "opened")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "browser")
	// The "browser" writes its arguments, one per line, into the FIFO; the
	// test's read blocks until it has.
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > '"+fifo+"'\n"), 0o700); err != nil { // #nosec G306 -- an executable test script
		t.Fatal(err)
	}
	open, err := browser.Command(script + " --new-window")
	if err != nil {
		t.Fatal(err)
	}
	const u = "http://127.0.0.1:1/realms/r/protocol/openid-connect/auth?state=x&scope=openid+email"
	if err := open(u); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(fifo) // #nosec G304 -- the test's own FIFO
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var args []string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		args = append(args, sc.Text())
	}
	if strings.Join(args, "|") != "--new-window|"+u {
		t.Errorf("the command got %q, want its own argument then the URL, unchanged", args)
	}
}

func TestCommandErrors(t *testing.T) {
	for _, cmd := range []string{"", "   ", "no-such-browser-command-xyz --flag"} {
		if _, err := browser.Command(cmd); err == nil {
			t.Errorf("%q: no error", cmd)
		}
	}
}
