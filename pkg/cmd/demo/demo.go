// Package demo implements `pbench-auth demo`: the whole seed on one machine,
// with nothing but this binary. It runs the real commands (serve --dev,
// login, call, logout) in-process, with a browser stand-in that fills the
// development broker's login form over HTTP, and checks that every step
// answers as the seed says.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/call"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/login"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/logout"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmd/serve"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// Options are the parsed flags of `demo`.
type Options struct {
	// Factory runs the demo's commands; demo turns its -v trace on.
	Factory *cmdutil.Factory

	// TokenStore is --token-store: auto (default), keyring or file.
	TokenStore string
	// Timeout bounds each step.
	Timeout time.Duration
}

// NewCmd builds `demo`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{Factory: f}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the whole token sequence on this machine: serve --dev, login, calls answered 200/401/403",
		Long: `Run Pbench's third-party token sequence end to end, with nothing else installed:

  1. start "serve --dev" on a free loopback port: a Pbench-shaped server that
     validates tokens, a development broker shaped like Keycloak (users
     user/user and admin/admin with role ADMIN), in front of a stand-in API
     whose /api/v1/admin/... needs the ADMIN role;
  2. call /api/v1/user without a token (401);
  3. log in as "user" with the real login command (GET /api/v1/endpoints,
     discovery, PKCE, loopback redirect, code exchange, id_token check, token
     store); a browser stand-in fills the broker's login form over HTTP;
  4. call /api/v1/user (200, the identity the server extracted, on stdout)
     and /api/v1/admin/datasets (403);
  5. log in as "admin" and call /api/v1/admin/datasets (200);
  6. log out (revoke at the broker, delete the tokens).

To watch the same sequence in a browser, run "pbench-auth serve --dev" and open
its dashboard, http://127.0.0.1:8080/dashboard/.

Each step's trace (-v, tokens redacted) is printed as it happens. The exit
status is 0 only if every step answered as the seed says. The demo's tokens
are deleted from the token store at the end, whatever happens.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Timeout <= 0 {
				return cmdutil.Usagef("--timeout must be positive, e.g. 1m")
			}
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.TokenStore, "token-store", "",
		`where the demo's tokens are kept meanwhile: "auto", "keyring" or "file" (default $PBENCH_AUTH_TOKEN_STORE, else auto)`)
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", time.Minute, "how long each step may take")
	return cmd
}

// adminPrefix is the role-protected part of the stand-in API.
const adminPrefix = "/api/v1/admin"

func run(ctx context.Context, opts *Options) error {
	d, err := newDemo(opts)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	d.section("start the Pbench API stand-in behind the gateway")
	api, err := startAPI(ctx)
	if err != nil {
		return err
	}
	d.say("stand-in API on %s: %s/... answers with the identity the gateway forwards", api, adminPrefix)

	d.section("start: pbench-auth serve --dev --listen 127.0.0.1:0 --upstream %s --require-role %s=ADMIN", api, adminPrefix)
	server, served, err := d.startServe(ctx, api)
	if err != nil {
		return err
	}
	// Stopping serve also writes out its buffered request log, so on success
	// it stops before the summary and its lines come before it.
	stopServe := sync.OnceFunc(func() {
		stop()
		if err := <-served; err != nil {
			d.say("serve stopped: %v", err)
		}
	})
	defer stopServe()
	defer d.forget(server)

	logIn := func(user string) step {
		return step{"seed 1–10", "log in as " + user, func(ctx context.Context) error {
			return d.login(ctx, server, user)
		}}
	}
	steps := []step{
		{"seed 11–13", "call /api/v1/user without a token: want 401", d.call(server, "/api/v1/user", http.StatusUnauthorized, "--anonymous")},
		logIn("user"),
		{"seed 11–13", "call /api/v1/user as user: want 200 and the identity", d.call(server, "/api/v1/user", http.StatusOK)},
		{"seed 11–13", "call " + adminPrefix + "/datasets as user: want 403 (no ADMIN role)", d.call(server, adminPrefix+"/datasets", http.StatusForbidden)},
		logIn("admin"),
		{"seed 11–13", "call " + adminPrefix + "/datasets as admin: want 200", d.call(server, adminPrefix+"/datasets", http.StatusOK)},
		{"logout", "log out: revoke the refresh token at the broker, delete the tokens", d.logout(server)},
	}
	for i, s := range steps {
		d.section("step %d/%d [%s] %s", i+1, len(steps), s.seed, s.what)
		sctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		err := s.run(sctx)
		cancel()
		if err != nil {
			d.say("FAILED: %v", err)
			return cmdutil.WithExitCode(cmdutil.ExitFailure,
				fmt.Errorf("demo failed at step %d (%s): %w", i+1, s.what, err))
		}
		d.say("ok")
	}
	stopServe()
	d.section("every step answered as the seed says")
	d.say("to watch the same sequence in a browser: pbench-auth serve --dev --listen 127.0.0.1:8080,")
	d.say("then open http://127.0.0.1:8080/dashboard/ and log in as admin/admin or user/user")
	return nil
}

type step struct {
	seed, what string
	run        func(context.Context) error
}

// demo holds what the steps share.
type demo struct {
	f      *cmdutil.Factory // the demo's factory: -v on, statuses recorded
	errOut io.Writer
	kind   string // the token store actually used
	status *statusRecorder
}

func newDemo(opts *Options) (*demo, error) {
	parent := opts.Factory
	f := *parent
	f.Verbose = true
	hc, err := parent.HTTPClient("")
	if err != nil {
		return nil, err
	}
	rec := &statusRecorder{base: hc.Transport}
	recording := *hc
	recording.Transport = rec
	f.HTTPClient = func(string) (*http.Client, error) { return &recording, nil }
	// Open the store once: auto's fallback warning is then said once, and
	// every command uses the same store.
	store, err := f.TokenStore(opts.TokenStore)
	if err != nil {
		return nil, err
	}
	// auto's fallback to the file store warns on first use; the commands
	// will be told the kind explicitly, so use it once here to say it.
	if _, err := store.List(); err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	return &demo{f: &f, errOut: f.IO.ErrOut, kind: store.Kind(), status: rec}, nil
}

func (d *demo) section(format string, args ...any) {
	_, _ = fmt.Fprintf(d.errOut, "\n== "+format+"\n", args...)
}

func (d *demo) say(format string, args ...any) {
	_, _ = fmt.Fprintf(d.errOut, "   "+format+"\n", args...)
}

// execute runs one of the real commands with args, as the CLI would.
func (d *demo) execute(ctx context.Context, cmd *cobra.Command, args ...string) error {
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetOut(d.f.IO.Out)
	cmd.SetErr(d.errOut)
	return cmd.ExecuteContext(ctx)
}

// startAPI runs the stand-in of the API behind the gateway on a free
// loopback port until ctx ends.
func startAPI(ctx context.Context) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("listen for the API stand-in: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(adminPrefix+"/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"path":              r.URL.Path,
			"x-forwarded-user":  r.Header.Get("X-Forwarded-User"),
			"x-forwarded-roles": r.Header.Get("X-Forwarded-Roles"),
		})
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	go func() { <-ctx.Done(); _ = hs.Close() }()
	return "http://" + ln.Addr().String(), nil
}

var listening = regexp.MustCompile(`listening on (http://\S+), issuer (\S+)`)

// startServe runs the serve command with --dev until ctx ends, and returns
// the server's URL once it listens. served receives serve's result.
func (d *demo) startServe(ctx context.Context, api string) (string, <-chan error, error) {
	out := &lineWriter{w: d.errOut, prefix: "   serve | ", match: listening, found: make(chan []string, 1)}
	sf := *d.f
	sf.IO = &cmdutil.IOStreams{In: d.f.IO.In, Out: out, ErrOut: out}
	served := make(chan error, 1)
	go func() {
		served <- d.execute(ctx, serve.NewCmd(&sf, nil), "--dev", "--listen", "127.0.0.1:0",
			"--upstream", api, "--require-role", adminPrefix+"=ADMIN")
	}()
	select {
	case m := <-out.found:
		d.say("Pbench server %s, broker %s", m[1], m[2])
		return m[1], served, nil
	case err := <-served:
		return "", nil, fmt.Errorf("serve --dev did not start: %w", err)
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
}

// login runs the login command, with a browser stand-in that signs user in
// at the development broker's form (the dev users' passwords are their names).
func (d *demo) login(ctx context.Context, server, user string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hc, err := d.f.HTTPClient("")
	if err != nil {
		return err
	}
	lf := *d.f
	lf.OpenBrowser = func(authURL string) error {
		go func() {
			loc, err := devbrowser.Login(ctx, hc, authURL, user, user)
			if err != nil {
				cancel(fmt.Errorf("browser stand-in: %w", err))
				return
			}
			d.say("(browser stand-in: signed in as %q on the broker's form; following its redirect to the loopback listener)", user)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
			if err == nil {
				var resp *http.Response
				if resp, err = hc.Do(req); err == nil {
					_ = resp.Body.Close()
				}
			}
			if err != nil {
				cancel(fmt.Errorf("browser stand-in: deliver the redirect: %w", err))
			}
		}()
		return nil
	}
	err = d.execute(ctx, login.NewCmd(&lf, nil), "--server", server, "--token-store", d.kind, "--timeout", "1m")
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// call runs the call command and checks the status the server answered.
func (d *demo) call(server, path string, want int, flags ...string) func(context.Context) error {
	return func(ctx context.Context) error {
		args := append([]string{"--server", server, "--token-store", d.kind}, flags...)
		d.status.reset()
		err := d.execute(ctx, call.NewCmd(d.f, nil), append(args, path)...)
		got := d.status.last(server + path)
		if got == 0 {
			return fmt.Errorf("no answer from the server: %w", err)
		}
		if got != want {
			mismatch := fmt.Errorf("the server answered %d, the seed wants %d", got, want)
			if err != nil {
				return fmt.Errorf("%w: %w", mismatch, err)
			}
			return mismatch
		}
		d.say("the server answered %d %s, as the seed says", got, http.StatusText(got))
		return nil
	}
}

func (d *demo) logout(server string) func(context.Context) error {
	return func(ctx context.Context) error {
		return d.execute(ctx, logout.NewCmd(d.f, nil), "--server", server, "--token-store", d.kind)
	}
}

// forget deletes the demo's tokens, whatever happened.
func (d *demo) forget(server string) {
	store, err := d.f.TokenStore(d.kind)
	if err == nil {
		err = store.Delete(server)
	}
	if err != nil {
		d.say("could not delete the demo's tokens for %s: %v", server, err)
	}
}

// statusRecorder remembers the status of the last response per URL.
type statusRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	got  map[string]int
}

func (r *statusRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	base := r.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err == nil {
		u := *req.URL
		u.RawQuery = ""
		r.mu.Lock()
		if r.got == nil {
			r.got = map[string]int{}
		}
		r.got[u.String()] = resp.StatusCode
		r.mu.Unlock()
	}
	return resp, err
}

func (r *statusRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = nil
}

func (r *statusRecorder) last(url string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[url]
}

// lineWriter copies serve's output, line by line with a prefix, and hands
// over the first line that matches.
type lineWriter struct {
	w      io.Writer
	prefix string
	match  *regexp.Regexp
	found  chan []string

	mu      sync.Mutex
	partial string
	matched bool
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial += string(p)
	for {
		line, rest, ok := strings.Cut(l.partial, "\n")
		if !ok {
			break
		}
		l.partial = rest
		_, _ = fmt.Fprintln(l.w, l.prefix+line)
		if m := l.match.FindStringSubmatch(line); m != nil && !l.matched {
			l.matched = true
			l.found <- m
		}
	}
	return len(p), nil
}
