// Package token implements `pbench-auth token`: print a valid access token
// for scripts, refreshing it first when it is about to expire.
package token

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
)

// Options are the parsed flags of `token` and what it needs to run.
type Options struct {
	IO       *cmdutil.IOStreams
	Server   func(flag string) (string, error)
	Sessions func(kind, profile string) (*session.Manager, error)
	// APIKey is $PBENCH_API_KEY: when set, it is what token prints.
	APIKey func() string

	Flags  cmdutil.ClientFlags
	Header bool
}

// NewCmd builds `token`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Server: f.Server, Sessions: f.Sessions, APIKey: f.APIKey}
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a valid access token (refreshed if needed) on stdout",
		Long: `Print the access token of the profile on stdout, and nothing else, refreshing it
first when it expires within max(30s, 10% of its lifetime).

The token is a secret: pass it straight to the program that needs it, e.g.

  curl -H "$(pbench-auth token --header)" https://pbench.example.com/api/v1/datasets

With $PBENCH_API_KEY set, that API key is printed instead: it is what every
other command sends to the server then.

Exit codes: 3 not logged in, 4 session expired (log in again), 5 broker unreachable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	cmd.Flags().BoolVar(&opts.Header, "header", false, `print "Authorization: Bearer <token>" instead of the bare token`)
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	if opts.APIKey != nil {
		if key := opts.APIKey(); key != "" {
			return write(opts, key)
		}
	}
	server, err := opts.Server(opts.Flags.Server)
	if err != nil {
		return err
	}
	m, err := opts.Sessions(opts.Flags.TokenStore, server)
	if err != nil {
		return err
	}
	ts, err := m.Token(ctx, server)
	if err != nil {
		return cmdutil.SessionError(err)
	}
	return write(opts, ts.AccessToken)
}

func write(opts *Options, token string) (err error) {
	if opts.Header {
		_, err = fmt.Fprintf(opts.IO.Out, "Authorization: Bearer %s\n", token)
	} else {
		_, err = fmt.Fprintln(opts.IO.Out, token)
	}
	return err
}
