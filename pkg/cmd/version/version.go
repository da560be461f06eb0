// Package version implements `pbench-auth version`.
package version

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/buildinfo"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// Options are the parsed flags of `version`.
type Options struct {
	IO   *cmdutil.IOStreams
	JSON bool
}

// NewCmd builds `version`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, build date and Go version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if runF != nil {
				return runF(opts)
			}
			return run(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print as JSON")
	return cmd
}

func run(opts *Options) error {
	info := buildinfo.Get()
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	_, err := fmt.Fprintf(opts.IO.Out, "pbench-auth %s\ncommit: %s\nbuilt: %s\ngo: %s %s\n",
		info.Version, info.Commit, info.Date, info.GoVersion, info.Platform)
	return err
}
