// Package list implements `pbench-auth key list`.
package list

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/shared"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// Options are the parsed flags of `key list`.
type Options struct {
	IO     *cmdutil.IOStreams
	Now    func() time.Time
	Client func(cmdutil.ClientFlags) (*shared.Client, error)

	Flags cmdutil.ClientFlags
	JSON  bool
}

// NewCmd builds `key list`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Now: f.Now, Client: func(cf cmdutil.ClientFlags) (*shared.Client, error) { return shared.NewClient(f, cf) }}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List your API keys (never the keys themselves)",
		Long: `List your API keys on the server (GET /api/v1/key): id, label, the key's first
characters, when it was created, last used (to within a minute) and when it expires.
The keys themselves cannot be shown: the server keeps only their hashes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the server's JSON")
	return cmd
}

func run(ctx context.Context, opts *Options) error {
	c, err := opts.Client(opts.Flags)
	if err != nil {
		return err
	}
	var keys []shared.Info
	var raw []byte
	if err := c.Do(ctx, "GET", "/api/v1/key", &keys, &raw); err != nil {
		return err
	}
	if opts.JSON {
		var v any
		_ = json.Unmarshal(raw, &v)
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	if len(keys) == 0 {
		_, _ = fmt.Fprintln(opts.IO.ErrOut, "no API keys: create one with pbench-auth key create --label LABEL")
		return nil
	}
	now := opts.Now()
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tLABEL\tKEY\tCREATED\tLAST USED\tEXPIRES")
	for _, k := range keys {
		label := "-"
		if k.Label != nil && *k.Label != "" {
			label = strconv.Quote(*k.Label)
			label = label[1 : len(label)-1] // escaped, so a label cannot reshape the table
		}
		_, _ = fmt.Fprintf(tw, "%d\t%s\t%s…\t%s\t%s\t%s\n", k.ID, label, k.Prefix,
			day(&k.Created), when(k.LastUsed, "never"), expires(k.Expires, now))
	}
	return tw.Flush()
}

func day(t *time.Time) string { return t.Local().Format("2006-01-02 15:04") }

func when(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return day(t)
}

func expires(t *time.Time, now time.Time) string {
	switch {
	case t == nil:
		return "never"
	case !t.After(now):
		return day(t) + " (expired)"
	}
	return day(t)
}
