// Package login implements `pbench-auth login`: seed steps 1–10, from the
// Pbench server's client configuration to the broker's verified tokens, kept
// in the token store under the server's profile.
package login

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/internal/browser"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/config"
	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Options are the parsed flags of `login` and what it needs to run.
type Options struct {
	IO          *cmdutil.IOStreams
	Now         func() time.Time
	HTTPClient  func(profile string) (*http.Client, error)
	Server      func(flag string) (string, error)
	TokenStore  func(kind string) (tokenstore.Store, error)
	OpenBrowser func(url string) error
	Tracef      func(format string, args ...any)

	Flags           cmdutil.ClientFlags
	Issuer          string
	ClientID        string
	Scopes          []string
	ListenAddresses []string
	NoBrowser       bool
	BrowserCommand  string
	Device          bool
	Timeout         time.Duration
}

// NewCmd builds `login`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{
		IO: f.IO, Now: f.Now, HTTPClient: f.HTTPClient, Server: f.Server,
		TokenStore: f.TokenStore, OpenBrowser: f.OpenBrowser, Tracef: f.Tracef,
	}
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a Pbench server through its identity broker",
		Long: `Log in to a Pbench server: ask it which identity broker and client it uses
(GET /api/v1/endpoints), sign in at that broker in a browser, and keep the
broker's tokens in the token store for the other commands.

The browser comes back to a listener on this machine's loopback interface
(127.0.0.1, a free port unless --listen-address says otherwise). The login uses
PKCE, state and nonce, and the id_token is verified before anything is stored.
On a host without a browser (an SSH session), use --device and enter the code
shown on any other device, or --no-browser and open the URL printed yourself.

--issuer and --client-id log in against a broker directly, without a Pbench
server; the profile is then named after the issuer (use it with --server).`,
		Example: `  pbench-auth login --server https://pbench.example.com
  pbench-auth login --device
  pbench-auth login --scope offline_access --listen-address 127.0.0.1:8000 --listen-address 127.0.0.1:18000
  pbench-auth login --issuer https://sso.example.com/realms/pbench --client-id pbench-client`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	fl := cmd.Flags()
	fl.StringVar(&opts.Issuer, "issuer", "", "log in against this broker (OpenID issuer URL) directly, without a Pbench server; needs --client-id")
	fl.StringVar(&opts.ClientID, "client-id", "", "the client id at the broker given with --issuer")
	fl.StringSliceVar(&opts.Scopes, "scope", nil, `extra scopes to request besides "openid profile email" (repeatable), e.g. offline_access`)
	fl.StringArrayVar(&opts.ListenAddresses, "listen-address", nil,
		"loopback address for the browser's redirect, tried in order when repeated (default "+login.DefaultListenAddress+": a free port)")
	fl.BoolVar(&opts.NoBrowser, "no-browser", false, "do not open a browser: print the broker's login URL on stderr and wait")
	fl.StringVar(&opts.BrowserCommand, "browser-command", "", `open the login URL with this command instead of the system's browser (split on spaces, no quoting)`)
	fl.BoolVar(&opts.Device, "device", false, "log in with a code entered on another device (OAuth 2.0 device authorization grant)")
	fl.DurationVar(&opts.Timeout, "timeout", login.DefaultTimeout, "how long to wait for the login to be finished in the browser")
	return cmd
}

func (opts *Options) validate() error {
	switch {
	case (opts.Issuer == "") != (opts.ClientID == ""):
		return cmdutil.Usagef("--issuer and --client-id go together: give both to log in against a broker directly")
	case opts.Issuer != "" && opts.Flags.Server != "":
		return cmdutil.Usagef("--issuer logs in without a Pbench server: give either --server or --issuer, not both")
	case opts.NoBrowser && opts.BrowserCommand != "":
		return cmdutil.Usagef("--no-browser and --browser-command contradict each other: give one")
	case opts.Device && len(opts.ListenAddresses) > 0:
		return cmdutil.Usagef("--listen-address is for the browser login: --device needs no listener")
	case opts.Timeout <= 0:
		return cmdutil.Usagef("--timeout must be positive, e.g. 5m")
	}
	return nil
}

func run(ctx context.Context, opts *Options) error {
	profile, server, err := opts.profile()
	if err != nil {
		return err
	}
	browser, err := opts.browser()
	if err != nil {
		return &cmdutil.UsageError{Err: err}
	}
	// Open the store first: a locked keyring is better reported before
	// the user goes through the browser than after.
	store, err := opts.TokenStore(opts.Flags.TokenStore)
	if err != nil {
		return err
	}
	hc, err := opts.HTTPClient(server)
	if err != nil {
		return err
	}

	broker, err := opts.discover(ctx, hc, server)
	if err != nil {
		return err
	}
	res, err := login.Login(ctx, login.Options{
		Broker:          broker,
		Server:          server,
		ExtraScopes:     opts.Scopes,
		Device:          opts.Device,
		ListenAddresses: opts.ListenAddresses,
		Browser:         browser,
		Timeout:         opts.Timeout,
		HTTPClient:      hc,
		Now:             opts.Now,
		Prompt:          opts.IO.ErrOut,
		Tracef:          opts.Tracef,
	})
	if err != nil {
		return err
	}
	if err := store.Save(profile, res.Tokens); err != nil {
		return fmt.Errorf("the login succeeded but its tokens could not be kept: %w", err)
	}
	where := store.Location(profile)
	opts.Tracef("tokens stored for profile %s in %s", profile, where)
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "Logged in to %s as %s.\nTokens are kept in %s.\n", profile, res.User, where)
	return nil
}

// profile resolves the profile name and the Pbench server ("" for --issuer).
func (opts *Options) profile() (profile, server string, err error) {
	if opts.Issuer != "" {
		p, err := config.NormalizeServer(opts.Issuer)
		if err != nil {
			return "", "", cmdutil.Usagef("--issuer: %w", err)
		}
		return p, "", nil
	}
	server, err = opts.Server(opts.Flags.Server)
	return server, server, err
}

// browser is how the login URL reaches the user: nil prints it.
func (opts *Options) browser() (func(string) error, error) {
	switch {
	case opts.BrowserCommand != "":
		return browser.Command(opts.BrowserCommand)
	case opts.NoBrowser, opts.Device:
		return nil, nil
	}
	return opts.OpenBrowser, nil
}

// discover is seed steps 1–2 (skipped with --issuer), then OpenID discovery.
func (opts *Options) discover(ctx context.Context, hc *http.Client, server string) (*discovery.Broker, error) {
	issuer, clientID := opts.Issuer, opts.ClientID
	if server != "" {
		opts.Tracef("GET %s%s", server, discovery.EndpointsPath)
		ep, err := discovery.FetchEndpoints(ctx, hc, server)
		if err != nil {
			return nil, err
		}
		issuer, clientID = ep.OpenID.IssuerURL(), ep.OpenID.Client
		opts.Tracef("the server names broker %s and client %s", issuer, clientID)
	}
	opts.Tracef("GET %s/.well-known/openid-configuration", issuer)
	b, err := discovery.Discover(ctx, hc, issuer, clientID)
	if err != nil {
		return nil, err
	}
	md := b.Metadata
	opts.Tracef("discovery: authorization %s, token %s, device %s, revocation %s, end session %s, PKCE S256 %v",
		md.AuthorizationEndpoint, md.TokenEndpoint, orNone(md.DeviceAuthorizationEndpoint),
		orNone(md.RevocationEndpoint), orNone(md.EndSessionEndpoint), b.SupportsPKCES256())
	return b, nil
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
