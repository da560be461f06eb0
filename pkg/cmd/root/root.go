// Package root assembles the pbench-auth command tree.
package root

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/call"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/demo"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/doctor"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/login"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/logout"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/serve"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/status"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/token"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/version"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// NewCmd builds the root command with every subcommand, wired to f.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pbench-auth",
		Short: "Log in to a Pbench server through its identity broker, and validate its tokens",
		Long: `pbench-auth gives Pbench users and operators the whole third-party token lifecycle:

  client:  login, token, status, call, logout   (tokens kept in the OS keyring, refreshed)
  keys:    key create, key list, key delete     (API keys for automation: PBENCH_API_KEY)
  server:  serve                                 (publish the client configuration, validate tokens)

Run "pbench-auth serve --dev" for a self-contained server with a development broker.`,
		SilenceUsage:  true,
		SilenceErrors: true,

		SuggestionsMinimumDistance: 2,
	}
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.PersistentFlags().BoolVarP(&f.Verbose, "verbose", "v", false,
		"print each step on stderr (tokens are always redacted)")
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &cmdutil.UsageError{Err: err}
	})

	cmd.AddCommand(version.NewCmd(f, nil))
	cmd.AddCommand(login.NewCmd(f, nil))
	cmd.AddCommand(token.NewCmd(f, nil))
	cmd.AddCommand(status.NewCmd(f, nil))
	cmd.AddCommand(logout.NewCmd(f, nil))
	cmd.AddCommand(call.NewCmd(f, nil))
	cmd.AddCommand(key.NewCmd(f))
	cmd.AddCommand(serve.NewCmd(f, nil))
	cmd.AddCommand(doctor.NewCmd(f, nil))
	cmd.AddCommand(demo.NewCmd(f, nil))
	cmdutil.AddTLSFlags(cmd, f) // on the commands above that have --server

	// The root runs only to say that a command is unknown, as a usage error.
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return cmdutil.Usagef("%s (see 'pbench-auth --help')", msg)
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
	usageErrorsForArgs(cmd)
	return cmd
}

// usageErrorsForArgs makes every command's argument check fail as a usage
// error (exit code 2), like a bad flag does.
func usageErrorsForArgs(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return cmdutil.WithExitCode(cmdutil.ExitUsage, err)
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		usageErrorsForArgs(sub)
	}
}
