package status_test

import (
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/status"
)

func TestFlags(t *testing.T) {
	clitest.ParseTable(t, status.NewCmd, []clitest.FlagCase[status.Options]{
		{Args: []string{}, Want: func(o *status.Options) bool { return !o.JSON && o.Flags.Server == "" && o.Flags.TokenStore == "" }},
		{Args: []string{"--json", "--server", "https://p", "--token-store", "file"}, Want: func(o *status.Options) bool {
			return o.JSON && o.Flags.Server == "https://p" && o.Flags.TokenStore == "file"
		}},
		{Args: []string{"extra"}, Err: "unknown command"},
	})
}
