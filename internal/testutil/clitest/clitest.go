// Package clitest builds the cmdutil.Factory that command tests run the
// command tree with: in-memory IO and an environment of the test's own.
package clitest

import (
	"bytes"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
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
