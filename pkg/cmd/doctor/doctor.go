// Package doctor implements `pbench-auth doctor`: it checks, one line each,
// everything that `login` and `call` depend on, and says how to fix what is
// wrong. It never prints a token and never changes stored tokens: it does not
// refresh, it only reads what is stored.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// DefaultTimeout bounds each network request doctor makes.
const DefaultTimeout = 10 * time.Second

// Options are the parsed flags of `doctor` and every dependency it has on the
// outside world, so that tests can drive each failing condition.
type Options struct {
	IO     *cmdutil.IOStreams
	Now    func() time.Time
	Getenv func(string) string
	// HTTPClient is the client login and call use for a profile.
	HTTPClient func(profile string) (*http.Client, error)
	// CATrust says which CAs HTTPClient(profile) trusts (--ca-cert and the
	// like); nil leaves the ca check to the environment.
	CATrust func(profile string) (cmdutil.CATrust, error)
	// Server resolves --server (then $PBENCH_SERVER, then the config file).
	Server func(flag string) (string, error)
	// ProbeKeyring writes, reads back and deletes a throw-away keyring
	// entry, bounded by the token store's timeout.
	ProbeKeyring func() error
	// OpenStore opens the token store of a concrete kind, keyring or file,
	// without auto's probe and warning (doctor reports them itself).
	OpenStore func(kind string) (tokenstore.Store, error)
	// StateDir is where the file store keeps tokens.
	StateDir func() string

	Flags   cmdutil.ClientFlags
	JSON    bool
	Timeout time.Duration
}

// NewCmd builds `doctor`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{
		IO:           f.IO,
		Now:          f.Now,
		Getenv:       f.Getenv,
		HTTPClient:   f.HTTPClient,
		CATrust:      f.CATrust,
		Server:       f.Server,
		ProbeKeyring: func() error { return tokenstore.ProbeKeyring(tokenstore.Options{}) },
		OpenStore: func(kind string) (tokenstore.Store, error) {
			return tokenstore.Open(tokenstore.Options{Kind: kind, Dir: f.StateDir(), Warn: io.Discard})
		},
		StateDir: f.StateDir,
	}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the server, the broker, the clock, the keyring and the stored tokens",
		Long: `Check, one line each, what login and call depend on, and say how to fix
what is wrong:

  server    the Pbench server answers GET /api/v1/endpoints with a broker and a client id
  clock     this machine's clock against the server's Date header
            (warning beyond 30s, failure beyond 5m)
  issuer    the broker's OpenID discovery names exactly the issuer the server announces
  pkce      the broker supports PKCE S256
  device    the broker offers the device grant (login --device)
  proxy     HTTPS_PROXY / HTTP_PROXY / NO_PROXY, and which connections use a proxy
  ca        SSL_CERT_FILE / SSL_CERT_DIR, when set
  keyring   the OS keyring can hold tokens (a throw-away entry is written, read and
            deleted), and which store "auto" picks
  tokens    the profile's stored tokens: none, valid, refreshable or expired

Tokens are never printed and never refreshed; the only write is the keyring
probe's throw-away entry, deleted at once.

Exit codes: 0 when nothing would stop login or call (warnings included),
1 when at least one check failed, 2 for bad flags.`,
		Example: `  pbench-auth doctor --server https://pbench.example.com
  pbench-auth doctor --json | jq '.checks[] | select(.status != "ok")'`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cmdutil.Usagef("doctor takes no arguments (got %q): name the server with --server URL", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Timeout <= 0 {
				return cmdutil.Usagef("--timeout %s: want a positive duration such as 10s", opts.Timeout)
			}
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	f.AddClientFlags(cmd, &opts.Flags)
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", DefaultTimeout, "bound on each network request")
	return cmd
}

// Report is what `doctor --json` prints.
type Report struct {
	// Server is the profile checked; empty when none could be resolved.
	Server string `json:"server"`
	// OK is false when at least one check failed.
	OK     bool     `json:"ok"`
	Checks []Result `json:"checks"`
}

func run(ctx context.Context, opts *Options) error {
	kind, err := storeKind(opts.Flags.TokenStore, opts.Getenv)
	if err != nil {
		return err
	}
	// A server that cannot be resolved is reported by the server check.
	server, serverErr := opts.Server(opts.Flags.Server)
	if serverErr != nil {
		server = ""
	}
	hc, err := opts.HTTPClient(server)
	if err != nil {
		return err
	}
	d := &doctor{opts: opts, hc: hc, kind: kind, server: server, serverErr: serverErr}
	rep := d.run(ctx)
	if err := write(opts.IO, opts.JSON, rep); err != nil {
		return err
	}
	if !rep.OK {
		// The report says what failed; only the exit code is left to give.
		return cmdutil.WithExitCode(cmdutil.ExitFailure, cmdutil.ErrSilent)
	}
	return nil
}

// storeKind is --token-store, else $PBENCH_AUTH_TOKEN_STORE, else auto.
func storeKind(flag string, getenv func(string) string) (string, error) {
	kind := flag
	if kind == "" {
		kind = getenv("PBENCH_AUTH_TOKEN_STORE")
	}
	switch kind {
	case "":
		return tokenstore.KindAuto, nil
	case tokenstore.KindAuto, tokenstore.KindKeyring, tokenstore.KindFile:
		return kind, nil
	}
	return "", cmdutil.Usagef("unknown token store %q: use --token-store auto, keyring or file", kind)
}

func write(ios *cmdutil.IOStreams, asJSON bool, rep *Report) error {
	if asJSON {
		enc := json.NewEncoder(ios.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	var b strings.Builder
	width := 0
	for _, r := range rep.Checks {
		width = max(width, len(r.Name))
	}
	fails, warns := 0, 0
	for _, r := range rep.Checks {
		mark := r.Status.mark(ios.OutTTY)
		fmt.Fprintf(&b, "%s %-*s  %s\n", mark, width, r.Name, r.Message)
		if r.Fix != "" {
			fmt.Fprintf(&b, "%*s  fix: %s\n", utf8.RuneCountInString(mark)+1+width, "", r.Fix)
		}
		switch r.Status {
		case StatusFail:
			fails++
		case StatusWarn:
			warns++
		}
	}
	switch {
	case fails > 0:
		fmt.Fprintf(&b, "%s, %s: login or call will not work until the failures are fixed\n", plural(fails, "failure"), plural(warns, "warning"))
	case warns > 0:
		fmt.Fprintf(&b, "no failures, %s\n", plural(warns, "warning"))
	default:
		b.WriteString("all checks passed\n")
	}
	_, err := io.WriteString(ios.Out, b.String())
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
