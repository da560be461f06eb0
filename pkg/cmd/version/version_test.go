package version

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/pkg/buildinfo"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

func TestVersion(t *testing.T) {
	for _, tt := range []struct {
		args []string
		json bool
	}{{nil, false}, {[]string{"--json"}, true}} {
		ios, _, out, _ := cmdutil.Test()
		cmd := NewCmd(&cmdutil.Factory{IO: ios}, nil)
		cmd.SetArgs(tt.args)
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		want := buildinfo.Get()
		if !tt.json {
			for _, s := range []string{"pbench-auth " + want.Version, "commit: " + want.Commit, runtime.Version()} {
				if !strings.Contains(out.String(), s) {
					t.Errorf("version output %q lacks %q", out, s)
				}
			}
			continue
		}
		var got buildinfo.Info
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("version --json: %v in %q", err, out)
		}
		if got != want || got.GoVersion != runtime.Version() || got.Version == "" {
			t.Errorf("version --json = %+v, want %+v", got, want)
		}
	}
}
