// Package key implements `pbench-auth key`: API keys for automation, which
// the server keeps (create, list, delete) and `key import` brings over from
// a Pbench server's database.
package key

import (
	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/create"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/deletecmd"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/importcmd"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/list"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// NewCmd builds `key` and its subcommands.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Create, list and delete API keys for automation",
		Long: `API keys let programs that cannot open a browser (Pbench's agent, CI jobs) call the
server: send one as "Authorization: Bearer KEY" (the agent's --token option), or set
PBENCH_API_KEY for every pbench-auth command. A key carries the identity and roles you
had when you created it, until it is deleted or expires.

Creating a key needs a token from the broker (pbench-auth login); the key is printed
once and the server keeps only its hash, so store it where the program reads it.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(create.NewCmd(f, nil))
	cmd.AddCommand(list.NewCmd(f, nil))
	cmd.AddCommand(deletecmd.NewCmd(f, nil))
	cmd.AddCommand(importcmd.NewCmd(f, nil))
	return cmd
}
