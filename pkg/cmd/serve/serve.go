// Package serve implements `pbench-auth serve`: the Pbench server side of the
// token sequence (package server) on a listener.
package serve

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
	"github.com/distributed-system-analysis/pbench-auth/server/apikey"
	"github.com/distributed-system-analysis/pbench-auth/server/dashboard"
	"github.com/distributed-system-analysis/pbench-auth/server/store"
)

// Options are the parsed flags of `serve`.
type Options struct {
	IO     *cmdutil.IOStreams
	Getenv func(string) string
	// StateDir is where the default API key database lives (in serve/).
	StateDir func() string

	// Flags holds the values of the flags; only those the user set override
	// the configuration file (see config).
	Flags      server.Config
	ConfigFile string
	Check      bool
	Dev        bool
	devOptions // the --dev-* flags, see dev.go

	// flagSet reports whether the user gave the flag named name.
	flagSet func(name string) bool
	// flags are the command's flags, once parsed.
	flags *pflag.FlagSet
}

// shutdownTimeout bounds how long in-flight requests may take to finish
// after SIGINT/SIGTERM.
const shutdownTimeout = 10 * time.Second

// NewCmd builds `serve`. runF replaces the behaviour in tests.
func NewCmd(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Getenv: f.Getenv, StateDir: f.StateDir, Flags: server.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Publish the client configuration and validate the broker's tokens",
		Long: `Serve the Pbench server side of the token sequence:

  GET /api/v1/endpoints   public: the broker (issuer, realm) and client id that clients log in with,
                          and the uri map of the API (Pbench's format); with --upstream, the
                          upstream's document with serve's broker and serve's address
  GET /api/v1/user        the identity in the request's Bearer token (401/403 otherwise)
  GET /healthz, /readyz   alive; ready once the broker's signing keys are loaded
  GET /metrics            Prometheus metrics
  /api/v1/key[/ID]        API keys for automation: POST ?label=L creates one (broker token only),
                          GET lists them (never the key), DELETE /api/v1/key/ID deletes one
  /api/v1/...             with --upstream: validated, then proxied with X-Forwarded-User/-Email/-Roles;
                          requests without credentials on --anonymous paths go through without identity
  GET /dashboard/         a page that logs a person in at the broker and calls this server
                          (/ redirects there unless --upstream is set; --dashboard=false turns it off)

--require-role compares paths case-insensitively on whole segments, ignoring trailing dots and
spaces, merged slashes, Unicode compatibility forms and suffixes (/admin.json is /admin); a path
that servers read in different ways (an encoded slash %2F, a "%" left after decoding, "\", ";", control characters,
dot segments) is answered 400. See the operator guide.

An API key sent as "Authorization: Bearer KEY" carries its owner's identity (roles as at
its creation) wherever a token does. Keys are kept as SHA-256 hashes in --database: an
SQLite file (default $XDG_STATE_HOME/pbench-auth/serve/apikeys.db, 0600; --dev uses a
temporary one) for one replica, or postgres://USER@HOST/DB shared by several replicas,
which then refuse a deleted key within a second. Put the password in PGPASSWORD or
~/.pgpass rather than in the URL, which other users can see in the process list. While the
database is down, serve still starts and validates tokens; key requests get 503.

Tokens are checked against the broker's published keys (OpenID discovery and JWKS, refreshed
every 5 minutes and when a token names an unknown key): signature (RS*, PS*, ES*, EdDSA only),
exact issuer, audience, authorized party, expiry, not-before and issued-at with --leeway.

Every flag can also be set in the YAML file given by --config, under the flag's name
(audience, allowed-client, require-role, anonymous, cors-origin and trusted-proxy take lists); flags given on the command line win.
The file also takes cache-size (verified tokens remembered, default 100000, -1 for none),
refresh-interval (default 5m), min-refresh-interval (default 10s), and the limits on slow
clients: read-timeout (whole request and answer on serve's own and the dev broker's
endpoints, default 30s), stream-idle-timeout (longest stall of a proxied request's body or
answer, default 60s) and max-connections (default: the file descriptor limit less 64,
halved with --upstream; past it the least active connection is closed to let a new one in).

Unless GOMEMLIMIT is set, the garbage collector gets a soft memory limit of
20 MiB + 320 bytes per cache entry (about 51 MiB by default).`,
		Example: `  pbench-auth serve --issuer https://sso.example.com/realms/pbench-server
  pbench-auth serve --config /etc/pbench-auth/serve.yaml --check
  pbench-auth serve --issuer https://sso.example.com/realms/pbench-server --upstream http://127.0.0.1:8001 \
      --require-role /api/v1/admin=ADMIN --anonymous /api/v1/datasets \
      --cors-origin https://dashboard.example.com --trusted-proxy 10.0.0.0/8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.flags = cmd.Flags()
			opts.flagSet = opts.flags.Changed
			if runF != nil {
				return runF(opts)
			}
			return run(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.ConfigFile, "config", "", "read settings from this YAML file (flags win)")
	fl.BoolVar(&opts.Check, "check", false, "check the configuration, report every problem, and exit (2 if any)")
	fl.BoolVar(&opts.Dev, "dev", false, "also run a development broker on the same listener and trust it")
	addConfigFlags(fl, &opts.Flags)
	addDevFlags(cmd, opts)
	return cmd
}

// addConfigFlags defines the flags of server.Config's fields on fl, bound to
// c. It is the one list of them: config defines them again on the
// configuration read from the file to apply the flags the user gave.
func addConfigFlags(fl *pflag.FlagSet, c *server.Config) {
	fl.StringVar(&c.Listen, "listen", c.Listen, "address to listen on, HOST:PORT")
	fl.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS with this PEM certificate (with --tls-key)")
	fl.StringVar(&c.TLSKey, "tls-key", "", "PEM private key of --tls-cert")
	fl.StringVar(&c.LogFormat, "log-format", c.LogFormat, "request log format on stderr: text or json")
	fl.StringVar(&c.Issuer, "issuer", "", "the broker's OpenID issuer URL, e.g. https://sso.example.com/realms/pbench (required)")
	fl.StringVar(&c.ClientID, "client-id", c.ClientID, "the public client that CLIs and dashboards log in with")
	fl.StringArrayVar(&c.Audiences, "audience", nil, "accept only tokens whose aud contains one of these (repeatable; default: pbench-server, as Pbench; with Dex: the client id)")
	fl.StringArrayVar(&c.AllowedClients, "allowed-client", nil, "accept only tokens whose azp, when present, is one of these (repeatable; default: the client id)")
	fl.DurationVar(&c.Leeway, "leeway", c.Leeway, "clock skew tolerated on exp, nbf and iat")
	fl.StringVar(&c.CACert, "ca-cert", "", "PEM file of CAs to trust, besides the system's, for the broker's and the upstream's TLS")
	fl.StringVar(&c.Database, "database", "",
		"where API keys are kept: an SQLite file path, or postgres://USER@HOST/DB for several replicas (default $XDG_STATE_HOME/pbench-auth/serve/apikeys.db; with --dev a temporary file)")
	fl.StringVar(&c.Upstream, "upstream", "", "gateway mode: proxy every other /api/v1/... request there after validation")
	fl.IntVar(&c.UpstreamMaxIdleConns, "upstream-max-idle-conns", 0,
		"idle connections to the upstream kept for reuse: at least the requests in flight at peak (default 256)")
	fl.IntVar(&c.UpstreamMaxConns, "upstream-max-conns", 0, "cap on connections to the upstream; requests beyond it wait (default 0: no cap)")
	fl.DurationVar(&c.UpstreamIdleTimeout, "upstream-idle-timeout", 0,
		"close upstream connections idle this long; keep it below the upstream's keep-alive timeout (default 60s)")
	fl.BoolVar(&c.UpstreamHTTP1Only, "upstream-http1-only", false, "speak HTTP/1.1 to an https upstream instead of offering HTTP/2")
	fl.StringArrayVar(&c.RequireRoles, "require-role", nil,
		"PATH_PREFIX=ROLE: requests at or below the path need the role, else 403 (repeatable; every matching rule applies; paths compared as the operator guide says)")
	fl.StringArrayVar(&c.Anonymous, "anonymous", nil,
		"PATH_PREFIX[=METHOD,...]: with --upstream, requests with no credentials at or below the path (exactly) pass without identity (repeatable; default methods GET,HEAD; a bad token is still 401)")
	fl.StringArrayVar(&c.CORSOrigins, "cors-origin", nil, "allow pages of this origin (scheme://host[:port], or *) to call serve and the gateway; preflights answered by serve (repeatable)")
	fl.StringArrayVar(&c.TrustedProxies, "trusted-proxy", nil, "believe X-Forwarded-Host/-Proto/-For from this address or CIDR (repeatable; default: no one)")
	fl.StringVar(&c.IntrospectionEndpoint, "introspection-endpoint", "", "RFC 7662 endpoint for opaque tokens (default: introspection_endpoint from the broker's discovery)")
	fl.StringVar(&c.IntrospectionClientID, "introspection-client-id", "", "the broker's confidential client allowed to introspect; turns introspection of opaque (non-JWT) tokens on")
	fl.StringVar(&c.IntrospectionClientSecretFile, "introspection-client-secret-file", "", "file holding that client's secret (keep it 0600; never logged)")
	fl.DurationVar(&c.IntrospectionCacheTTL, "introspection-cache-ttl", 0, "reuse an introspection answer at most this long: revocation is seen within it (default 60s)")
	fl.BoolVar(&c.IntrospectAll, "introspect-all", false, "introspect JWTs too, after their signature check: revocation takes effect within --introspection-cache-ttl")
	fl.BoolVar(&c.Dashboard, "dashboard", c.Dashboard, "host the browser dashboard at /dashboard/ (register <this server>/dashboard/ with the broker, see the operator guide)")
	fl.StringVar(&c.DashboardScope, "dashboard-scope", "", `the scope the dashboard asks the broker for (default "openid profile email"; Dex needs offline_access for refresh tokens)`)
}

// config is the defaults, overridden by the --config file, overridden by
// the flags the user gave.
func (opts *Options) config() (server.Config, error) {
	if opts.ConfigFile == "" {
		return opts.Flags, nil
	}
	cfg := server.DefaultConfig()
	b, err := os.ReadFile(opts.ConfigFile)
	if err != nil {
		return cfg, cmdutil.Usagef("--config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, cmdutil.Usagef("--config %s: %w", opts.ConfigFile, err)
	}
	if opts.flags == nil {
		return cfg, nil
	}
	// The flags the user gave win: define them again on cfg and give them
	// the same values.
	over := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fromFile := cfg
	addConfigFlags(over, &cfg) // defining a flag stores its default in the field:
	cfg = fromFile             // restore the file's values (the flags keep pointing at cfg)
	var errs []error
	over.VisitAll(func(dst *pflag.Flag) {
		src := opts.flags.Lookup(dst.Name)
		if src == nil || !src.Changed {
			return
		}
		if sv, ok := src.Value.(pflag.SliceValue); ok {
			errs = append(errs, dst.Value.(pflag.SliceValue).Replace(sv.GetSlice()))
			return
		}
		errs = append(errs, dst.Value.Set(src.Value.String()))
	})
	if err := errors.Join(errs...); err != nil {
		return cfg, cmdutil.Usagef("--config %s: %w", opts.ConfigFile, err)
	}
	return cfg, nil
}

func run(ctx context.Context, opts *Options) error {
	cfg, err := opts.config()
	if err != nil {
		return err
	}
	if err := checkDevFlags(opts); err != nil {
		return err
	}
	if opts.Check {
		return check(opts, cfg)
	}
	if !opts.Dev {
		if err := validate(cfg); err != nil {
			return err
		}
	}
	logs := newLogWriter(opts.IO.ErrOut, logFlushInterval)
	defer func() { _ = logs.Flush() }()
	logger := newLogger(logs, cfg.LogFormat)
	cfg.Logger = logger
	if opts.Getenv == nil || opts.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit(cfg.CacheSize))
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("listen on %s: the address is in use by another process: stop it, or choose another with --listen: %w", cfg.Listen, err)
		}
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer func() { _ = ln.Close() }()
	mux := http.NewServeMux()
	if opts.Dev {
		if cfg.Issuer, err = setupDev(ctx, opts, ln.Addr(), mux); err != nil {
			return err
		}
		// The server fetches its own broker's keys in-process: over TLS it
		// would have to trust its own certificate (a private CA's, say).
		if cfg.HTTPClient, err = ownBrokerClient(cfg.Issuer, mux); err != nil {
			return err
		}
		if err := validate(cfg); err != nil {
			return err
		}
	}
	database, cleanup, err := opts.database(cfg)
	if err != nil {
		return err
	}
	defer cleanup()
	keys := apikey.New(apikey.Options{Database: database, Logger: logger})
	cfg.APIKeys = keys
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Dashboard {
		if err := mountDashboard(mux, cfg); err != nil {
			return err
		}
	}
	keys.Start(ctx)
	mux.Handle("/", srv.Handler())

	// Timeouts and the connection cap keep slow clients from holding the
	// server (and the dev broker on the same listener): see server.HTTPServer.
	hs := srv.HTTPServer(mux, logger)
	hs.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	ln = srv.Listener(ln)
	scheme := "http"
	serve := func() error { return hs.Serve(ln) }
	if cfg.TLSCert != "" {
		scheme = "https"
		certs, err := server.NewCertReloader(cfg.TLSCert, cfg.TLSKey, logger)
		if err != nil {
			return err
		}
		// The files are reloaded when they change: rotate without restarting.
		hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate}
		serve = func() error { return hs.ServeTLS(ln, "", "") }
	}
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "pbench-auth serve: API keys in %s\n", store.Location(database))
	_, _ = fmt.Fprintf(opts.IO.ErrOut, "pbench-auth serve: listening on %s://%s, issuer %s\n", scheme, ln.Addr(), cfg.Issuer)
	if cfg.Dashboard {
		_, _ = fmt.Fprintf(opts.IO.ErrOut, "pbench-auth serve: dashboard at %s://%s%s\n", scheme, ln.Addr(), dashboard.Path)
	}

	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests", "timeout", shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// mountDashboard serves the browser dashboard at /dashboard/ and, unless an
// upstream owns the site (gateway mode), redirects / to it.
func mountDashboard(mux *http.ServeMux, cfg server.Config) error {
	paths := []string{"/api/v1/user"}
	for _, rule := range cfg.RequireRoles {
		if prefix, _, ok := strings.Cut(rule, "="); ok && !slices.Contains(paths, prefix) {
			paths = append(paths, prefix)
		}
	}
	h, err := dashboard.Handler(dashboard.Options{Issuer: cfg.Issuer, Scope: cfg.DashboardScope, Paths: paths})
	if err != nil {
		return cmdutil.Usagef("%w", err)
	}
	mux.Handle(dashboard.Path, h)
	if cfg.Upstream == "" {
		mux.Handle("GET /{$}", http.RedirectHandler(dashboard.Path, http.StatusFound))
	}
	return nil
}

// database is where API keys are kept: --database, else for --dev a
// temporary file (removed by cleanup), else apikeys.db in serve's state
// directory.
func (opts *Options) database(cfg server.Config) (dsn string, cleanup func(), err error) {
	switch {
	case cfg.Database != "":
		return cfg.Database, func() {}, nil
	case opts.Dev:
		dir, err := os.MkdirTemp("", "pbench-auth-dev-")
		if err != nil {
			return "", nil, fmt.Errorf("temporary API key database: %w", err)
		}
		return filepath.Join(dir, "apikeys.db"), func() { _ = os.RemoveAll(dir) }, nil
	}
	return filepath.Join(opts.StateDir(), "serve", "apikeys.db"), func() {}, nil
}

// validate turns configuration problems into a usage error listing them all.
func validate(cfg server.Config) error {
	if err := cfg.Validate(); err != nil {
		return cmdutil.Usagef("invalid configuration (see pbench-auth serve --help):\n  %s",
			strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return nil
}

// check is `serve --check`: every problem on stderr, exit 2 if any.
func check(opts *Options, cfg server.Config) error {
	if opts.Dev && cfg.Issuer == "" {
		cfg.Issuer = "http://127.0.0.1/realms/pbench-server" // supplied by --dev at start-up
	}
	if err := cfg.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			_, _ = fmt.Fprintln(opts.IO.ErrOut, "problem:", line)
		}
		return cmdutil.WithExitCode(cmdutil.ExitUsage, cmdutil.ErrSilent)
	}
	_, _ = fmt.Fprintln(opts.IO.ErrOut, "configuration OK")
	return nil
}

// memoryLimit is the soft limit (see runtime/debug.SetMemoryLimit) that
// `serve` gives the garbage collector unless GOMEMLIMIT is set: 20 MiB plus
// 320 bytes per verified-token cache entry (an entry takes about 250). It
// keeps the resident size of a server with a full cache of 100k tokens
// near 55 MiB instead of letting the heap double before each collection.
func memoryLimit(cacheSize int) int64 {
	switch cacheSize {
	case 0:
		cacheSize = server.DefaultCacheSize
	case -1:
		cacheSize = 0
	}
	return 20<<20 + int64(cacheSize)*320
}

// newLogger logs to w in format (text or json); when w is a logWriter,
// warnings and errors are written out at once.
func newLogger(w io.Writer, format string) *slog.Logger {
	var h slog.Handler = slog.NewTextHandler(w, nil)
	if format == "json" {
		h = slog.NewJSONHandler(w, nil)
	}
	if lw, ok := w.(*logWriter); ok {
		h = flushHandler{h, lw}
	}
	return slog.New(h)
}
