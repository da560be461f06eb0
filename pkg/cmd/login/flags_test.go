package login_test

import (
	"slices"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	cmdlogin "github.com/distributed-system-analysis/pbench-auth/pkg/cmd/login"
	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
)

func TestFlags(t *testing.T) {
	clitest.ParseTable(t, cmdlogin.NewCmd, []clitest.FlagCase[cmdlogin.Options]{
		{Args: []string{}, Want: func(o *cmdlogin.Options) bool {
			return o.Timeout == login.DefaultTimeout && !o.Device && !o.NoBrowser && o.Issuer == "" && len(o.Scopes) == 0
		}},
		{Args: []string{"--scope", "offline_access,groups", "--scope", "x", "--listen-address", "127.0.0.1:8000", "--listen-address", "[::1]:0", "--no-browser"},
			Want: func(o *cmdlogin.Options) bool {
				return slices.Equal(o.Scopes, []string{"offline_access", "groups", "x"}) &&
					slices.Equal(o.ListenAddresses, []string{"127.0.0.1:8000", "[::1]:0"}) && o.NoBrowser
			}},
		{Args: []string{"--issuer", "https://sso/realms/r", "--client-id", "c", "--device", "--timeout", "1m"}, Want: func(o *cmdlogin.Options) bool {
			return o.Issuer == "https://sso/realms/r" && o.ClientID == "c" && o.Device && o.Timeout.Minutes() == 1
		}},
		{Args: []string{"--browser-command", "firefox --new-tab"}, Want: func(o *cmdlogin.Options) bool { return o.BrowserCommand == "firefox --new-tab" }},
		{Args: []string{"--issuer", "https://sso/realms/r"}, Err: "--issuer and --client-id go together"},
		{Args: []string{"--issuer", "https://sso/realms/r", "--client-id", "c", "--server", "https://p"}, Err: "not both"},
		{Args: []string{"--no-browser", "--browser-command", "x"}, Err: "contradict"},
		{Args: []string{"--device", "--listen-address", "127.0.0.1:0"}, Err: "--device needs no listener"},
		{Args: []string{"--timeout", "0s"}, Err: "--timeout must be positive"},
	})
}
