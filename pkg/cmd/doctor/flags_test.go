package doctor_test

import (
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/clitest"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/doctor"
)

func TestFlags(t *testing.T) {
	clitest.ParseTable(t, doctor.NewCmd, []clitest.FlagCase[doctor.Options]{
		{Args: []string{}, Want: func(o *doctor.Options) bool {
			return o.Timeout == doctor.DefaultTimeout && !o.JSON && o.Flags.Server == ""
		}},
		{Args: []string{"--json", "--timeout", "3s", "--server", "https://p", "--token-store", "keyring"}, Want: func(o *doctor.Options) bool {
			return o.JSON && o.Timeout.Seconds() == 3 && o.Flags.Server == "https://p" && o.Flags.TokenStore == "keyring"
		}},
		{Args: []string{"--timeout", "-1s"}, Err: "--timeout -1s: want a positive duration"},
	})
}
