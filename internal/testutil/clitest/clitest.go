// Package clitest builds the cmdutil.Factory that command tests run the
// command tree with: in-memory IO and an environment of the test's own.
package clitest

import (
	"bytes"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/spf13/cobra"
)

// Factory returns a factory whose stdout and stderr are the buffers out and
// errOut, whose clock is time.Now, whose HTTP client is hc, and whose
// environment holds only a fresh XDG_STATE_HOME and XDG_CONFIG_HOME (under
// t.TempDir, so no test sees the user's profiles or tokens) and then env.
// With hc nil, the HTTP client is the real one (cmdutil's, built for each
// profile from that environment, the TLS flags and the config file).
// OpenBrowser is unset: a test that logs in sets it. Tests change any other
// field of the result.
func Factory(t testing.TB, hc *http.Client, env map[string]string) (f *cmdutil.Factory, out, errOut *bytes.Buffer) {
	t.Helper()
	vars := map[string]string{"XDG_STATE_HOME": t.TempDir(), "XDG_CONFIG_HOME": t.TempDir()}
	maps.Copy(vars, env)
	ios, _, out, errOut := cmdutil.Test()
	f = &cmdutil.Factory{
		IO:         ios,
		Now:        time.Now,
		Getenv:     func(k string) string { return vars[k] },
		HTTPClient: func(string) (*http.Client, error) { return hc, nil },
	}
	if hc == nil {
		f.HTTPClient = f.HTTPClients()
	}
	return f, out, errOut
}

// Parse runs the command that newCmd builds with args and a runF that keeps
// the options instead of running: the flag-parsing tests of each command.
// It returns the options runF got (nil if the command failed before) and
// the command's error (flag errors and the validation done before runF).
func Parse[O any](t testing.TB, newCmd func(*cmdutil.Factory, func(*O) error) *cobra.Command, args ...string) (*O, error) {
	t.Helper()
	f, _, _ := Factory(t, &http.Client{}, nil)
	var got *O
	cmd := newCmd(f, func(o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return got, err
}

// FlagCase is one row of a command's flag-parsing table: the arguments, and
// either what the options must then hold (Want) or a piece of the error
// (Err) for arguments that the command refuses before runF.
type FlagCase[O any] struct {
	Args []string
	Want func(*O) bool
	Err  string
}

// ParseTable checks each row of a command's flag-parsing table with Parse.
func ParseTable[O any](t *testing.T, newCmd func(*cmdutil.Factory, func(*O) error) *cobra.Command, cases []FlagCase[O]) {
	t.Helper()
	for _, c := range cases {
		o, err := Parse(t, newCmd, c.Args...)
		switch {
		case c.Err != "" && (err == nil || !strings.Contains(err.Error(), c.Err) || o != nil):
			t.Errorf("%q: error %v (runF reached: %v), want one containing %q before runF", c.Args, err, o != nil, c.Err)
		case c.Err == "" && err != nil:
			t.Errorf("%q: %v", c.Args, err)
		case c.Err == "" && !c.Want(o):
			t.Errorf("%q: options %+v", c.Args, *o)
		}
	}
}
