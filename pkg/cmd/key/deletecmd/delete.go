// Package deletecmd implements `pbench-auth key delete`.
package deletecmd

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/shared"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// Options are the parsed flags of `key delete`.
type Options struct {
	IO     *cmdutil.IOStreams
	Client func(cmdutil.ClientFlags) (*shared.Client, error)

	Flags cmdutil.ClientFlags
	ID    int64
}

// NewCmd builds `key delete`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Client: func(cf cmdutil.ClientFlags) (*shared.Client, error) { return shared.NewClient(f, cf) }}
	cmd := &cobra.Command{
		Use:   "delete ID",
		Short: "Delete an API key: every server replica refuses it within a second",
		Long: `Delete an API key (DELETE /api/v1/key/ID; the ids are in pbench-auth key list).
Requests with the key are refused from then on (401). An administrator may delete
anyone's key; anyone else's key id is answered "not found".`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return cmdutil.Usagef("key id %q: want the number that pbench-auth key list shows", args[0])
			}
			opts.ID = id
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	c, err := opts.Client(opts.Flags)
	if err != nil {
		return err
	}
	if err := c.Do(ctx, "DELETE", fmt.Sprintf("/api/v1/key/%d", opts.ID), nil, nil); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "deleted API key %d\n", opts.ID)
	return nil
}
