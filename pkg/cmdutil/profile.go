package cmdutil

import (
	"github.com/distributed-system-analysis/pbench-auth/pkg/config"
)

// Server resolves the Pbench server of this invocation: the --server flag,
// else $PBENCH_SERVER, else default-server from the config file. There is no
// global "current account" that one shell could change under another.
// It returns the normalised URL, which is also the profile's name.
func (f *Factory) Server(flag string) (string, error) {
	raw := flag
	if raw == "" {
		raw = f.Getenv("PBENCH_SERVER")
	}
	if raw == "" {
		cfg, err := config.Load(f.ConfigDir())
		if err != nil {
			return "", &UsageError{Err: err}
		}
		raw = cfg.DefaultServer
	}
	if raw == "" {
		return "", Usagef("no Pbench server given: use --server URL, set PBENCH_SERVER, or set default-server in %s/config.yaml", f.ConfigDir())
	}
	s, err := config.NormalizeServer(raw)
	if err != nil {
		return "", &UsageError{Err: err}
	}
	if err := f.CheckPlainHTTP(s); err != nil {
		return "", &UsageError{Err: err}
	}
	return s, nil
}
