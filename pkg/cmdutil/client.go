package cmdutil

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/apiclient"
	"github.com/distributed-system-analysis/pbench-auth/pkg/config"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// ClientFlags are the flags of every command that acts for a logged-in user.
type ClientFlags struct {
	// Server is --server; resolve it with Factory.Server.
	Server string
	// TokenStore is --token-store; "" means $PBENCH_AUTH_TOKEN_STORE, else auto.
	TokenStore string
}

// AddClientFlags registers --server and --token-store on cmd. The shell
// completes --server with the servers this user has configured or has tokens
// for (see KnownServers).
func (f *Factory) AddClientFlags(cmd *cobra.Command, cf *ClientFlags) {
	cmd.Flags().StringVar(&cf.Server, "server", "",
		"Pbench server URL (default $PBENCH_SERVER, else default-server in the config file)")
	cmd.Flags().StringVar(&cf.TokenStore, "token-store", "",
		`where tokens are kept: "keyring", "file" (0600, under $XDG_STATE_HOME/pbench-auth) or "auto" = keyring, else file with a warning (default $PBENCH_AUTH_TOKEN_STORE, else auto)`)
	_ = cmd.RegisterFlagCompletionFunc("server", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return f.KnownServers(cf.TokenStore), cobra.ShellCompDirectiveNoFileComp
	})
	_ = cmd.RegisterFlagCompletionFunc("token-store", cobra.FixedCompletions(
		[]string{tokenstore.KindAuto, tokenstore.KindKeyring, tokenstore.KindFile}, cobra.ShellCompDirectiveNoFileComp))
}

// completionKeyringTimeout bounds the keyring while the shell completes a
// flag: a Tab press must not hang on a locked or absent keyring.
const completionKeyringTimeout = time.Second

// KnownServers lists, sorted and without duplicates, the Pbench servers
// this user has named ($PBENCH_SERVER, default-server and the profiles of
// the config file) or holds tokens for in the token store of kind. It
// never fails: what cannot be read is left out.
func (f *Factory) KnownServers(kind string) []string {
	var servers []string
	add := func(raw string) {
		if s, err := config.NormalizeServer(raw); err == nil && raw != "" {
			servers = append(servers, s)
		}
	}
	add(f.Getenv("PBENCH_SERVER"))
	if cfg, err := config.Load(f.ConfigDir()); err == nil {
		add(cfg.DefaultServer)
		for s := range cfg.Profiles {
			add(s)
		}
	}
	if kind == "" {
		kind = f.Getenv("PBENCH_AUTH_TOKEN_STORE")
	}
	store, err := tokenstore.Open(tokenstore.Options{Kind: kind, Dir: f.StateDir(), Timeout: completionKeyringTimeout})
	if err == nil {
		profiles, _ := store.List()
		for _, p := range profiles {
			add(p)
		}
	}
	slices.Sort(servers)
	return slices.Compact(servers)
}

// TokenStore opens the token store of kind (the --token-store value; ""
// falls back to $PBENCH_AUTH_TOKEN_STORE, then "auto"). auto's fallback
// warning goes to stderr.
func (f *Factory) TokenStore(kind string) (tokenstore.Store, error) {
	if kind == "" {
		kind = f.Getenv("PBENCH_AUTH_TOKEN_STORE")
	}
	switch kind {
	case "", tokenstore.KindAuto, tokenstore.KindKeyring, tokenstore.KindFile:
	default:
		return nil, Usagef("unknown token store %q: use --token-store auto, keyring or file", kind)
	}
	return tokenstore.Open(tokenstore.Options{Kind: kind, Dir: f.StateDir(), Warn: f.IO.ErrOut})
}

// Sessions returns a session manager of profile over the token store of
// kind, with the factory's clock, profile's HTTP client and -v trace.
// Refresh locks live in StateDir()/locks.
func (f *Factory) Sessions(kind, profile string) (*session.Manager, error) {
	store, err := f.TokenStore(kind)
	if err != nil {
		return nil, err
	}
	hc, err := f.HTTPClient(profile)
	if err != nil {
		return nil, err
	}
	return &session.Manager{
		Store:      store,
		HTTPClient: hc,
		Now:        f.Now,
		LockDir:    filepath.Join(f.StateDir(), "locks"),
		Trace:      f.Tracef,
	}, nil
}

// SessionError gives a session error its exit code: not logged in 3,
// session expired 4, broker unreachable 5. Other errors pass unchanged.
func SessionError(err error) error {
	switch {
	case errors.Is(err, session.ErrNotLoggedIn):
		return WithExitCode(ExitNotLoggedIn, err)
	case errors.Is(err, session.ErrSessionExpired):
		return WithExitCode(ExitSessionExpired, err)
	case errors.Is(err, session.ErrBrokerUnreachable):
		return WithExitCode(ExitNetwork, err)
	}
	return err
}

// APIKey is the API key in $PBENCH_API_KEY (surrounding spaces removed), or
// "". When set, commands that call the server send it instead of the
// profile's token.
func (f *Factory) APIKey() string {
	return strings.TrimSpace(f.Getenv(apiclient.EnvAPIKey))
}

// Credentials returns what authenticates requests to profile's server: the
// API key of $PBENCH_API_KEY when set, else the sessions of the token store
// of kind (see Sessions).
func (f *Factory) Credentials(kind, profile string) (apiclient.Sessions, error) {
	if key := f.APIKey(); key != "" {
		f.Tracef("using the API key in %s (%s)", apiclient.EnvAPIKey, redact.Secret(key))
		return apiclient.APIKey(key), nil
	}
	return f.Sessions(kind, profile)
}
