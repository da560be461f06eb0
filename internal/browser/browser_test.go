//go:build unix

package browser_test

import (
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/browser"
)

func TestCommand(t *testing.T) {
	script, argv := recorder(t)
	open, err := browser.Command(script + " --new-window")
	if err != nil {
		t.Fatal(err)
	}
	const u = "http://127.0.0.1:1/realms/r/protocol/openid-connect/auth?state=x&scope=openid+email"
	if err := open(u); err != nil {
		t.Fatal(err)
	}
	if args := argv(); strings.Join(args, "|") != "--new-window|"+u {
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
