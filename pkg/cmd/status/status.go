// Package status implements `pbench-auth status`: who is logged in to a
// Pbench server, until when, and where the tokens are kept.
package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/apiclient"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Options are the parsed flags of `status` and what it needs to run.
type Options struct {
	IO       *cmdutil.IOStreams
	Now      func() time.Time
	Server   func(flag string) (string, error)
	Sessions func(kind, profile string) (*session.Manager, error)
	// APIKey is $PBENCH_API_KEY: when set, status reports on that key.
	APIKey     func() string
	HTTPClient func(profile string) (*http.Client, error)

	Flags cmdutil.ClientFlags
	JSON  bool
}

// NewCmd builds `status`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Now: f.Now, Server: f.Server, Sessions: f.Sessions, APIKey: f.APIKey, HTTPClient: f.HTTPClient}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show who is logged in, until when, and where the tokens are kept",
		Long: `Show the profile's server, issuer, user, roles, the expiry of the access and
refresh tokens, and the token store. The access token is refreshed first if it
is about to expire, so the answer is the one the next command will get.

With $PBENCH_API_KEY set, the credential in use is that API key: status says
so, and shows the identity the server gives it (GET /api/v1/user).

Exit codes: 0 logged in (or the API key accepted), 3 not logged in, 4 session expired (log in again),
5 broker unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

// Status is what `status --json` prints.
type Status struct {
	Server string `json:"server"`
	// Credential is what commands send: "token" (from login) or "api-key"
	// ($PBENCH_API_KEY).
	Credential string `json:"credential"`
	// KeyPrefix is the API key's non-secret beginning, when one is in use.
	KeyPrefix      string    `json:"api_key_prefix,omitempty"`
	LoggedIn       bool      `json:"logged_in"`
	SessionExpired bool      `json:"session_expired,omitempty"`
	Error          string    `json:"error,omitempty"`
	Issuer         string    `json:"issuer,omitempty"`
	ClientID       string    `json:"client_id,omitempty"`
	User           string    `json:"user,omitempty"`
	Email          string    `json:"email,omitempty"`
	Roles          []string  `json:"roles,omitempty"`
	AccessExpiry   time.Time `json:"access_expiry,omitzero"`
	RefreshToken   bool      `json:"refresh_token"`
	RefreshExpiry  time.Time `json:"refresh_expiry,omitzero"`
	Store          string    `json:"store"`
	Location       string    `json:"location"`
	// Warning is set when the tokens are in the file store.
	Warning string `json:"warning,omitempty"`
}

func run(ctx context.Context, opts *Options) error {
	server, err := opts.Server(opts.Flags.Server)
	if err != nil {
		return err
	}
	if opts.APIKey != nil {
		if key := opts.APIKey(); key != "" {
			return keyStatus(ctx, opts, server, key)
		}
	}
	m, err := opts.Sessions(opts.Flags.TokenStore, server)
	if err != nil {
		return err
	}
	st := Status{Server: server, Credential: "token", Store: m.Store.Kind(), Location: m.Store.Location(server)}
	ts, tokErr := m.Token(ctx, server)
	if tokErr != nil && !errors.Is(tokErr, session.ErrNotLoggedIn) && !errors.Is(tokErr, tokenstore.ErrKeyringUnavailable) {
		// Show what is stored even though it cannot be used (not when the
		// keyring failed: asking it again would double the wait).
		ts, _ = m.Store.Load(server)
	}
	st.LoggedIn = tokErr == nil
	st.SessionExpired = errors.Is(tokErr, session.ErrSessionExpired)
	if tokErr != nil {
		st.Error = tokErr.Error()
	}
	if ts != nil {
		describe(&st, ts)
	}
	if st.Store == tokenstore.KindFile {
		st.Warning = "tokens are kept in a file, not in the OS keyring: anyone who can read it as you can use them"
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			return err
		}
	} else if ts != nil {
		if err := printText(opts.IO.Out, &st, opts.Now()); err != nil {
			return err
		}
	}
	if tokErr != nil && !opts.JSON {
		_, _ = fmt.Fprintln(opts.IO.ErrOut, tokErr)
	}
	if tokErr != nil {
		// Already reported: only the exit code is left to give.
		return cmdutil.SessionError(&reported{tokErr})
	}
	return nil
}

// reported keeps an error's identity (errors.Is) while marking it as
// already printed, so main prints nothing more.
type reported struct{ err error }

func (r *reported) Error() string { return cmdutil.ErrSilent.Error() }
func (r *reported) Unwrap() []error {
	return []error{r.err, cmdutil.ErrSilent}
}

// describe fills st from the token set. The tokens' claims are decoded
// WITHOUT verifying their signatures: they are only shown to the user, who
// got them from the broker; nothing here is trusted for a decision.
func describe(st *Status, ts *tokenstore.TokenSet) {
	st.Issuer, st.ClientID = ts.Issuer, ts.ClientID
	st.AccessExpiry, st.RefreshExpiry = ts.Expiry, ts.RefreshExpiry
	st.RefreshToken = ts.RefreshToken != ""
	access, _ := session.Claims(ts.AccessToken)
	id, _ := session.Claims(ts.IDToken)
	for _, c := range []map[string]any{id, access} {
		if st.User == "" {
			st.User = firstString(c, "preferred_username", "name", "sub")
		}
		if st.Email == "" {
			st.Email = firstString(c, "email")
		}
	}
	st.Roles = roles(access, ts.ClientID)
}

func firstString(c map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := c[k].(string); ok && s != "" {
			return s
		}
	}
	return ""
}

// roles are Keycloak's realm_access.roles and resource_access[client].roles.
func roles(c map[string]any, clientID string) []string {
	var rs []string
	add := func(v any) {
		m, _ := v.(map[string]any)
		list, _ := m["roles"].([]any)
		for _, r := range list {
			if s, ok := r.(string); ok && !slices.Contains(rs, s) {
				rs = append(rs, s)
			}
		}
	}
	add(c["realm_access"])
	if ra, ok := c["resource_access"].(map[string]any); ok {
		add(ra[clientID])
	}
	return rs
}

func printText(w io.Writer, st *Status, now time.Time) error {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-15s %s\n", k+":", v)
		}
	}
	line("server", st.Server)
	if st.Credential == "api-key" {
		line("credential", "API key from $"+apiclient.EnvAPIKey+" ("+st.KeyPrefix+"…)")
	} else {
		line("credential", "access token from pbench-auth login")
	}
	line("issuer", st.Issuer)
	line("client", st.ClientID)
	user := st.User
	if st.Email != "" && st.Email != user {
		user += " <" + st.Email + ">"
	}
	line("user", user)
	line("roles", strings.Join(st.Roles, ", "))
	if st.Credential == "api-key" {
		_, err := io.WriteString(w, b.String())
		return err
	}
	line("access token", expiry(st.AccessExpiry, now, "no expiry given"))
	switch {
	case !st.RefreshToken:
		line("refresh token", "none (log in again when the access token expires)")
	default:
		line("refresh token", expiry(st.RefreshExpiry, now, "no expiry given"))
	}
	line("token store", st.Store+" ("+st.Location+")")
	if st.Warning != "" {
		line("warning", st.Warning)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func expiry(t, now time.Time, unknown string) string {
	if t.IsZero() {
		return unknown
	}
	d := t.Sub(now).Round(time.Second)
	if d <= 0 {
		return fmt.Sprintf("expired at %s (%s ago)", t.Local().Format(time.RFC3339), -d)
	}
	return fmt.Sprintf("valid until %s (in %s)", t.Local().Format(time.RFC3339), d)
}
