// Package create implements `pbench-auth key create`.
package create

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/key/shared"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// Options are the parsed flags of `key create`.
type Options struct {
	IO     *cmdutil.IOStreams
	Client func(cmdutil.ClientFlags) (*shared.Client, error)

	Flags   cmdutil.ClientFlags
	Label   string
	Expires time.Duration // 0: never
}

// NewCmd builds `key create`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Client: func(cf cmdutil.ClientFlags) (*shared.Client, error) { return shared.NewClient(f, cf) }}
	var expires string
	cmd := &cobra.Command{
		Use:   "create [--label LABEL] [--expires DURATION]",
		Short: "Create an API key and print it, once, on stdout",
		Long: `Create an API key on the server (POST /api/v1/key) and print it on stdout, and
nothing else: the server keeps only its hash, so this is the one time it is shown.
Creating a key needs your token from pbench-auth login: an API key cannot create keys.

The key carries your identity and the roles you have now. It lasts until it is
deleted (pbench-auth key delete ID), or until --expires: a duration such as 90d,
12h or 30m.`,
		Example: `  pbench-auth key create --label ci-runner --expires 90d > ~/.config/pbench-agent/key
  PBENCH_API_KEY=$(cat key) pbench-auth call /api/v1/user`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expires != "" {
				d, err := ParseDuration(expires)
				if err != nil {
					return cmdutil.Usagef("--expires %q: %v", expires, err)
				}
				opts.Expires = d
			}
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	cmd.Flags().StringVar(&opts.Label, "label", "", "what the key is for, shown in key list (at most 128 characters)")
	cmd.Flags().StringVar(&expires, "expires", "", "lifetime of the key: Nd, Nh, Nm or Ns, e.g. 90d (default: until deleted)")
	return cmd
}

// ParseDuration reads a lifetime: a Go duration (12h, 30m) or a whole
// number of days (90d).
func ParseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 3650 {
			return 0, fmt.Errorf("want a number of days between 1 and 3650, e.g. 90d")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d < time.Second {
			return 0, fmt.Errorf("want a duration of at least 1s, e.g. 90d, 12h or 30m")
		}
	}
	return d, nil
}

func run(ctx context.Context, opts *Options) error {
	c, err := opts.Client(opts.Flags)
	if err != nil {
		return err
	}
	q := url.Values{}
	if opts.Label != "" {
		q.Set("label", opts.Label)
	}
	if opts.Expires > 0 {
		q.Set("expires_in", strconv.FormatInt(int64(opts.Expires/time.Second), 10))
	}
	path := "/api/v1/key"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var k shared.Created
	if err := c.Do(ctx, "POST", path, &k, nil); err != nil {
		return err
	}
	if k.Key == "" {
		return fmt.Errorf("the server created key %d but did not send it: delete it (pbench-auth key delete %d) and try again", k.ID, k.ID)
	}
	if _, err := fmt.Fprintln(opts.IO.Out, k.Key); err != nil {
		return err
	}
	msg := fmt.Sprintf("created API key %d for %s", k.ID, k.Username)
	if opts.Expires > 0 {
		msg += ", valid until " + k.Created.Add(opts.Expires).Local().Format(time.RFC3339)
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "%s: it is shown only this once; keep it secret\n", msg)
	return nil
}
