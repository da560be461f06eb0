// Package logout implements `pbench-auth logout`: revoke the tokens at the
// broker, then delete them from this machine.
package logout

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
)

// Options are the parsed flags of `logout` and what it needs to run.
type Options struct {
	IO       *cmdutil.IOStreams
	Server   func(flag string) (string, error)
	Sessions func(kind string) (*session.Manager, error)

	Flags cmdutil.ClientFlags
	All   bool
}

// NewCmd builds `logout`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Server: f.Server, Sessions: f.Sessions}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the tokens at the broker and delete them from this machine",
		Long: `Revoke the profile's refresh token at the broker (RFC 7009, when the broker has a
revocation endpoint), then delete the profile's tokens from the token store.

A failed revocation is reported on stderr, and the tokens are deleted anyway; the
command fails only when the local deletion fails. --all logs out of every profile.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.All && opts.Flags.Server != "" {
				return cmdutil.Usagef("--all and --server cannot be used together")
			}
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	cmdutil.AddClientFlags(cmd, &opts.Flags)
	cmd.Flags().BoolVar(&opts.All, "all", false, "log out of every profile that has tokens")
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	var profiles []string
	if !opts.All {
		// Resolved before the HTTP client is built: the profile's ca-cert
		// applies to the revocation request.
		server, err := opts.Server(opts.Flags.Server)
		if err != nil {
			return err
		}
		profiles = []string{server}
	}
	m, err := opts.Sessions(opts.Flags.TokenStore)
	if err != nil {
		return err
	}
	if opts.All {
		if profiles, err = m.Store.List(); err != nil {
			return err
		}
		if len(profiles) == 0 {
			_, _ = fmt.Fprintln(opts.IO.ErrOut, "not logged in anywhere: nothing to do")
			return nil
		}
	}
	var failed []error
	for _, p := range profiles {
		if err := logout(ctx, opts, m, p); err != nil {
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

// logout logs out of one profile and reports it; only a failed local
// deletion is returned.
func logout(ctx context.Context, opts *Options, m *session.Manager, profile string) error {
	revokeErr, err := m.Logout(ctx, profile)
	if errors.Is(err, session.ErrNotLoggedIn) {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "not logged in to %s: nothing to do\n", profile)
		return nil
	}
	if revokeErr != nil {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "warning: %s: tokens not revoked at the broker: %v\n", profile, revokeErr)
	}
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "logged out of %s\n", profile)
	return nil
}
