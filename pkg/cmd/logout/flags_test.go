package logout_test

import (
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/logout"
)

func TestFlags(t *testing.T) {
	clitest.ParseTable(t, logout.NewCmd, []clitest.FlagCase[logout.Options]{
		{Args: []string{}, Want: func(o *logout.Options) bool { return !o.All && !o.Browser && o.Flags.Server == "" }},
		{Args: []string{"--all", "--browser", "--token-store", "file"}, Want: func(o *logout.Options) bool {
			return o.All && o.Browser && o.Flags.TokenStore == "file"
		}},
		{Args: []string{"--server", "https://p"}, Want: func(o *logout.Options) bool { return o.Flags.Server == "https://p" && !o.All }},
		// --browser-command implies --browser, once the command is found.
		{Args: []string{"--browser-command", "true"}, Want: func(o *logout.Options) bool { return o.Browser && o.BrowserCommand == "true" }},
		{Args: []string{"--all", "--server", "https://p"}, Err: "cannot be used together"},
		{Args: []string{"--browser-command", "no-such-opener-anywhere"}, Err: "no-such-opener-anywhere"},
	})
}
