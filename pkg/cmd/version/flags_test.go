package version_test

import (
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/version"
)

func TestFlags(t *testing.T) {
	clitest.ParseTable(t, version.NewCmd, []clitest.FlagCase[version.Options]{
		{Args: []string{}, Want: func(o *version.Options) bool { return !o.JSON }},
		{Args: []string{"--json"}, Want: func(o *version.Options) bool { return o.JSON }},
		{Args: []string{"extra"}, Err: "unknown command"},
	})
}
