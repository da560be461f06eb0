package cmdutil

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/browser"
)

// Factory carries every dependency a command has on the outside world. It is
// wired once, in New (the real one) or by tests (with fakes), and passed to
// each NewCmdX constructor. Commands read the fields when they run, not when
// they are built, so flags parsed by the root command are already applied.
type Factory struct {
	IO *IOStreams

	// Now is the clock. Tests replace it to move time.
	Now func() time.Time
	// Getenv reads the environment. Tests replace it.
	Getenv func(string) string
	// HTTPClient returns the client for the outgoing connections of one
	// profile (its Pbench server and broker; "" for none, as for a full URL
	// called anonymously). Never used for the loopback listener. The real
	// one (see httpclient.go) is built on first use for each profile: it
	// trusts the system's CAs plus --ca-cert, else $PBENCH_AUTH_CA_CERT,
	// else the profile's ca-cert, and honours HTTPS_PROXY/HTTP_PROXY/NO_PROXY.
	HTTPClient func(profile string) (*http.Client, error)
	// OpenBrowser opens url in the user's browser.
	OpenBrowser func(url string) error

	// Verbose is set by the root command's -v flag: Tracef then prints each
	// step of the sequence on stderr. Callers must redact secrets first.
	Verbose bool
	// TLS holds --ca-cert and --insecure-skip-tls-verify (AddTLSFlags).
	TLS TLSFlags
	// AllowInsecureHTTP is --allow-insecure-http (AddTLSFlags). DANGEROUS:
	// it lets plain http reach hosts that are not loopback, tokens included;
	// $PBENCH_AUTH_ALLOW_INSECURE_HTTP does the same. Warned about on use.
	AllowInsecureHTTP bool

	// guard refuses plain http off the machine (see plainhttp.go); New
	// builds it, a factory built otherwise gets it on first use.
	guard *plainHTTPGuard
}

// New returns the factory of a real process.
func New() *Factory {
	f := &Factory{
		IO:          System(),
		Now:         time.Now,
		Getenv:      os.Getenv,
		OpenBrowser: browser.Open,
	}
	f.HTTPClient = f.HTTPClients()
	f.guard = f.plainHTTP()
	return f
}

// Tracef prints one line of the -v trace on stderr. It must never be given a
// token, code, code_verifier or secret: pass them through Redact.
func (f *Factory) Tracef(format string, args ...any) {
	if !f.Verbose {
		return
	}
	_, _ = fmt.Fprintf(f.IO.ErrOut, "* "+format+"\n", args...)
}

// ConfigDir is $XDG_CONFIG_HOME/pbench-auth (or ~/.config/pbench-auth).
func (f *Factory) ConfigDir() string {
	return xdgDir(f.Getenv, "XDG_CONFIG_HOME", ".config")
}

// StateDir is $XDG_STATE_HOME/pbench-auth (or ~/.local/state/pbench-auth).
// The file token store and the refresh locks live here.
func (f *Factory) StateDir() string {
	return xdgDir(f.Getenv, "XDG_STATE_HOME", filepath.Join(".local", "state"))
}

func xdgDir(getenv func(string) string, env, fallback string) string {
	if d := getenv(env); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "pbench-auth")
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, fallback, "pbench-auth")
}
