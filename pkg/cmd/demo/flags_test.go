package demo_test

import (
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/demo"
)

func TestFlags(t *testing.T) {
	clitest.ParseTable(t, demo.NewCmd, []clitest.FlagCase[demo.Options]{
		{Args: []string{}, Want: func(o *demo.Options) bool { return o.Timeout == time.Minute && o.TokenStore == "" }},
		{Args: []string{"--timeout", "5s", "--token-store", "file"}, Want: func(o *demo.Options) bool {
			return o.Timeout == 5*time.Second && o.TokenStore == "file"
		}},
		{Args: []string{"--timeout", "0s"}, Err: "--timeout must be positive"},
		{Args: []string{"extra"}, Err: "unknown command"},
	})
}
