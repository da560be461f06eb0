package token_test

import (
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/token"
)

func TestFlags(t *testing.T) {
	clitest.ParseTable(t, token.NewCmd, []clitest.FlagCase[token.Options]{
		{Args: []string{}, Want: func(o *token.Options) bool { return !o.Header && o.Flags.Server == "" }},
		{Args: []string{"--header", "--server", "pbench.example.com"}, Want: func(o *token.Options) bool {
			return o.Header && o.Flags.Server == "pbench.example.com"
		}},
		{Args: []string{"--bogus"}, Err: "unknown flag: --bogus"},
	})
}
