// Package logout implements `pbench-auth logout`: revoke the tokens at the
// broker, delete them from this machine and, with --browser, end the
// broker's session in the browser.
package logout

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/internal/browser"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Options are the parsed flags of `logout` and what it needs to run.
type Options struct {
	IO     *cmdutil.IOStreams
	Server func(flag string) (string, error)
	// Sessions returns the session manager of a profile, whose HTTP client
	// trusts that profile's CAs.
	Sessions func(kind, profile string) (*session.Manager, error)
	// HTTPClient returns the HTTP client of a profile (its revocation
	// request goes through the profile's ca-cert).
	HTTPClient  func(profile string) (*http.Client, error)
	OpenBrowser func(url string) error

	Flags          cmdutil.ClientFlags
	All            bool
	Browser        bool
	BrowserCommand string

	// open is how the end-session page reaches the browser (--browser).
	open func(url string) error
}

// NewCmd builds `logout`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Server: f.Server, Sessions: f.Sessions, HTTPClient: f.HTTPClient, OpenBrowser: f.OpenBrowser}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the tokens at the broker and delete them from this machine",
		Long: `Revoke the profile's refresh token at the broker (RFC 7009, when the broker has a
revocation endpoint), then delete the profile's tokens from the token store.

A failed revocation is reported on stderr, and the tokens are deleted anyway; the
command fails only when the local deletion fails. --all logs out of every profile.

--browser also ends your session at the broker itself: it opens the broker's
end-session page (OpenID RP-initiated logout, e.g. Keycloak's or Dex's /logout)
in the browser, where you confirm. Without it, the broker still knows you in that
browser, and the next login there may not ask for a password. Use it with a broker
that cannot revoke tokens, such as Dex: ending the session is then the only way to
end the refresh token at the broker (with Dex, only for a client configured with
refreshTokenLifetime: session). Open the page in the browser you logged in with:
the broker finds your session by its cookie. The page's URL carries the client id,
never a token.`,
		Example: `  pbench-auth logout
  pbench-auth logout --browser
  pbench-auth logout --all --browser-command "firefox --new-tab"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.All && opts.Flags.Server != "" {
				return cmdutil.Usagef("--all and --server cannot be used together")
			}
			if err := opts.browser(); err != nil {
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
	fl.BoolVar(&opts.All, "all", false, "log out of every profile that has tokens")
	fl.BoolVar(&opts.Browser, "browser", false, "also end the session at the broker: open its end-session page in the browser you logged in with, and confirm there")
	fl.StringVar(&opts.BrowserCommand, "browser-command", "", `open the end-session page with this command instead of the system's browser (split on spaces, no quoting); implies --browser`)
	return cmd
}

// browser sets opts.open for --browser and --browser-command, checking the
// command before any token is deleted.
func (opts *Options) browser() error {
	switch {
	case opts.BrowserCommand != "":
		open, err := browser.Command(opts.BrowserCommand)
		if err != nil {
			return &cmdutil.UsageError{Err: err}
		}
		opts.Browser, opts.open = true, open
	case opts.Browser:
		opts.open = opts.OpenBrowser
	}
	return nil
}

func run(ctx context.Context, opts *Options) error {
	if !opts.All {
		server, err := opts.Server(opts.Flags.Server)
		if err != nil {
			return err
		}
		m, err := opts.Sessions(opts.Flags.TokenStore, server)
		if err != nil {
			return err
		}
		return report([]error{logout(ctx, opts, m, server)}, opts)
	}
	m, err := opts.Sessions(opts.Flags.TokenStore, "")
	if err != nil {
		return err
	}
	profiles, err := m.Store.List()
	if err != nil {
		return err
	}
	if len(profiles) == 0 && !hasUnreadable(m.Store) {
		_, _ = fmt.Fprintln(opts.IO.ErrOut, "not logged in anywhere: nothing to do")
		return nil
	}
	var errs []error
	for _, p := range profiles {
		// Each profile's revocation goes through its own ca-cert: the same
		// store, another HTTP client.
		pm := *m
		if pm.HTTPClient, err = opts.HTTPClient(p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		errs = append(errs, logout(ctx, opts, &pm, p))
	}
	errs = append(errs, removeUnreadable(opts, m.Store)...)
	return report(errs, opts)
}

// report prints the errors of the logouts, if any, and fails silently then.
func report(errs []error, opts *Options) error {
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		for _, err := range failed {
			_, _ = fmt.Fprintln(opts.IO.ErrOut, "error:", err)
		}
		return cmdutil.ErrSilent
	}
	return nil
}

func hasUnreadable(store tokenstore.Store) bool {
	ul, ok := store.(tokenstore.UnreadableLister)
	if !ok {
		return false
	}
	bad, err := ul.Unreadable()
	return err != nil || len(bad) > 0
}

// removeUnreadable is logout --all's pass over the token files that List
// skipped because they cannot be read (damaged, a link, another user's):
// their tokens cannot be revoked; the damaged ones of the user are deleted,
// and the others reported for the user to remove.
func removeUnreadable(opts *Options, store tokenstore.Store) []error {
	ul, ok := store.(tokenstore.UnreadableLister)
	if !ok {
		return nil
	}
	bad, err := ul.Unreadable()
	if err != nil {
		return []error{err}
	}
	var failed []error
	for _, u := range bad {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "warning: %s cannot be read, so its tokens were not revoked: %v\n", u.Location, u.Err)
		if err := ul.DeleteUnreadable(u.Location); err != nil {
			failed = append(failed, err)
			continue
		}
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "deleted %s\n", u.Location)
	}
	return failed
}

// logout logs out of one profile and reports it; only a failed local
// deletion is returned.
func logout(ctx context.Context, opts *Options, m *session.Manager, profile string) error {
	// Read before the tokens go: the end-session page's address. A failed
	// read is Logout's to report.
	ts, _ := m.Store.Load(profile)
	revokeErr, err := m.Logout(ctx, profile)
	if errors.Is(err, session.ErrNotLoggedIn) {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "not logged in to %s: nothing to do\n", profile)
		return nil
	}
	endURL, endErr := endSessionURL(ts)
	switch {
	case revokeErr == nil:
	case errors.Is(revokeErr, session.ErrNoRevocation) && endErr == nil && !opts.Browser:
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "warning: %s: tokens not revoked at the broker: %v\n"+
			"To end your session at the broker, and the refresh token with it where the broker ties them\n"+
			"(Dex: refreshTokenLifetime: session), open %s\n"+
			"in the browser you logged in with, or log out with --browser next time.\n", profile, revokeErr, endURL)
	case errors.Is(revokeErr, session.ErrNoRevocation) && endErr == nil:
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "%s: the broker has no revocation endpoint: ending the session there instead\n", profile)
	default:
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "warning: %s: tokens not revoked at the broker: %v\n", profile, revokeErr)
	}
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "logged out of %s\n", profile)
	if opts.Browser {
		endSession(opts, profile, endURL, endErr)
	}
	return nil
}

// endSession opens the broker's end-session page (--browser), or says why
// it cannot. It never fails the logout: the tokens are already gone here.
func endSession(opts *Options, profile, endURL string, endErr error) {
	if endErr != nil {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "warning: %s: cannot end the session at the broker: %v\n", profile, endErr)
		return
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "Ending your session at the broker: confirm the logout in the browser.\n%s\n", endURL)
	if err := opts.open(endURL); err != nil {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "warning: cannot open the browser (%v): open the address above in the browser you logged in with\n", err)
	}
}

// endSessionURL is session.EndSessionURL of the tokens logout read (nil
// when there were none, which Logout reports as not logged in), once
// browser.CheckURL accepts it: it is printed for the user and opened.
func endSessionURL(ts *tokenstore.TokenSet) (string, error) {
	if ts == nil {
		return "", session.ErrNoEndSession
	}
	u, err := session.EndSessionURL(ts)
	if err != nil {
		return "", err
	}
	if u, err = browser.CheckURL(u); err != nil {
		return "", fmt.Errorf("the broker's end_session_endpoint: %w", err)
	}
	return u, nil
}
