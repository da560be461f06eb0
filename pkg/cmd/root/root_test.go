package root

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
	}{
		{[]string{"version"}, cmdutil.ExitOK, ""},
		{[]string{}, cmdutil.ExitOK, ""},
		{[]string{"nope"}, cmdutil.ExitUsage, `unknown command "nope"`},
		{[]string{"logn"}, cmdutil.ExitUsage, "did you mean login?"},
		{[]string{"version", "extra"}, cmdutil.ExitUsage, `unknown command "extra"`},
		{[]string{"version", "--no-such-flag"}, cmdutil.ExitUsage, "unknown flag"},
		{[]string{"token", "a", "b"}, cmdutil.ExitUsage, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			ios, _, _, _ := cmdutil.Test()
			f := cmdutil.New()
			f.IO = ios
			cmd := NewCmd(f)
			cmd.SetArgs(tt.args)
			err := cmd.Execute()
			if got := cmdutil.ExitCode(err); got != tt.wantCode {
				t.Fatalf("exit code %d (err %v), want %d", got, err, tt.wantCode)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// Every command and flag has help text: the generated docs and completions
// are only as good as these strings.
func TestEveryCommandIsDocumented(t *testing.T) {
	ios, _, _, _ := cmdutil.Test()
	f := cmdutil.New()
	f.IO = ios
	root := NewCmd(f)
	for _, c := range append(root.Commands(), root) {
		if c.Short == "" {
			t.Errorf("command %q has no Short help", c.Name())
		}
		c.Flags().VisitAll(func(fl *pflag.Flag) {
			if fl.Usage == "" {
				t.Errorf("flag --%s of %q has no usage text", fl.Name, c.Name())
			}
		})
	}
}
