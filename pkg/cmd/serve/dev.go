package serve

import (
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
)

// devOptions are the flags of the development broker (serve --dev).
type devOptions struct {
	DevUsers       []string
	DevRealm       string
	DevTokenTTL    time.Duration
	DevKeyFile     string
	DevAllowRemote bool
	DevRealmFile   string
	DevRedirects   []string
	DevWebOrigins  []string
}

// dashboardPath is where serve hosts the dashboard; serve --dev registers
// it as a redirect URI and its origin as a web origin of the public client.
const dashboardPath = "/dashboard/"

// addDevFlags registers the flags of `serve --dev` (the development broker).
func addDevFlags(cmd *cobra.Command, opts *Options) {
	fl := cmd.Flags()
	d := &opts.devOptions
	fl.StringArrayVar(&d.DevUsers, "dev-user", []string{"admin:admin:ADMIN", "user:user"},
		"with --dev: a user NAME:PASSWORD[:ROLE,ROLE] of the development broker (repeatable; replaces the defaults)")
	fl.StringVar(&d.DevRealm, "dev-realm", devbroker.DefaultRealm, "with --dev: the realm; the issuer is http://LISTEN/realms/REALM")
	fl.DurationVar(&d.DevTokenTTL, "dev-token-ttl", devbroker.DefaultAccessTTL,
		"with --dev: access token lifetime (short values let you watch refreshes)")
	fl.StringVar(&d.DevKeyFile, "dev-key", "",
		"with --dev: keep the signing key in this PEM file (created 0600 if missing), so tokens survive restarts")
	fl.BoolVar(&d.DevAllowRemote, "dev-allow-remote", false,
		"with --dev: allow a non-loopback --listen (DANGER: the broker's users and passwords are well known)")
	fl.StringArrayVar(&d.DevRedirects, "dev-redirect-uri", nil,
		"with --dev: another valid redirect URI of the public client, e.g. a dashboard's http://localhost:3000/* (a trailing * is a prefix; repeatable; loopback CLIs and this server's /dashboard/* are always allowed)")
	fl.StringArrayVar(&d.DevWebOrigins, "dev-web-origin", nil,
		"with --dev: an origin (scheme://host:port) whose pages may call the token, userinfo, logout and revocation endpoints (CORS; repeatable; default: the redirect URIs' origins, and this server's)")
	fl.StringVar(&d.DevRealmFile, "dev-realm-file", "",
		"with --dev: a YAML file with users (username, password, roles) and client settings (redirectUris, webOrigins, postLogoutRedirectUris, pkceRequired, directAccessGrantsEnabled)")
}

// devOnlyFlags are meaningless without --dev; giving one alone is a mistake
// worth saying rather than ignoring.
var devOnlyFlags = []string{"dev-user", "dev-realm", "dev-token-ttl", "dev-key", "dev-allow-remote",
	"dev-redirect-uri", "dev-web-origin", "dev-realm-file"}

// checkDevFlags refuses --dev-* flags given without --dev.
func checkDevFlags(opts *Options) error {
	if opts.Dev || opts.flagSet == nil {
		return nil
	}
	for _, name := range devOnlyFlags {
		if opts.flagSet(name) {
			return cmdutil.Usagef("--%s only applies with --dev", name)
		}
	}
	return nil
}

var realmName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// setupDev starts the development broker for `serve --dev` on the same
// listener: it mounts the broker at /realms/<realm> on mux and returns its
// issuer, derived from the address actually listened on. The broker lives
// in memory for as long as the process.
func setupDev(_ context.Context, opts *Options, addr net.Addr, mux *http.ServeMux) (string, error) {
	cfg, err := opts.config()
	if err != nil {
		return "", err
	}
	d := opts.devOptions
	if cfg.Issuer != "" {
		return "", cmdutil.Usagef("--dev runs its own broker: do not give --issuer with it")
	}
	if !realmName.MatchString(d.DevRealm) {
		return "", cmdutil.Usagef("--dev-realm %q: use letters, digits, '.', '_' and '-'", d.DevRealm)
	}
	if d.DevTokenTTL < 10*time.Second {
		return "", cmdutil.Usagef("--dev-token-ttl %s is too short: use at least 10s", d.DevTokenTTL)
	}
	host, err := devHost(addr, d.DevAllowRemote)
	if err != nil {
		return "", err
	}
	realm := &devbroker.RealmFile{}
	if d.DevRealmFile != "" {
		if realm, err = devbroker.LoadRealmFile(d.DevRealmFile); err != nil {
			return "", cmdutil.Usagef("--dev-realm-file: %w", err)
		}
	}
	users := realm.Users
	if len(users) == 0 || (opts.flagSet != nil && opts.flagSet("dev-user")) {
		if len(realm.Users) > 0 {
			return "", cmdutil.Usagef("give the users either with --dev-user or in --dev-realm-file, not both")
		}
		for _, spec := range d.DevUsers {
			u, err := devbroker.ParseUserSpec(spec)
			if err != nil {
				return "", cmdutil.Usagef("--dev-user: %w", err)
			}
			users = append(users, u)
		}
	}
	var key *rsa.PrivateKey
	if d.DevKeyFile != "" {
		if key, err = devbroker.LoadOrCreateKey(d.DevKeyFile); err != nil {
			return "", cmdutil.Usagef("--dev-key: %w", err)
		}
	}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	clientID := cfg.ClientID
	if clientID == "" {
		clientID = devbroker.DefaultClientID
	}
	audience := []string{clientID, devbroker.DefaultResourceServer, "account"}
	audiences := cfg.Audiences
	if len(audiences) == 0 {
		audiences = []string{server.DefaultAudience} // what serve will require
	}
	for _, a := range audiences {
		if !slices.Contains(audience, a) {
			audience = append(audience, a)
		}
	}
	// The op library logs through slog's default logger: send it to stderr in
	// the server's format, warnings and errors only (its info lines are noise).
	slog.SetDefault(slog.New(libraryHandler(opts.IO.ErrOut, cfg.LogFormat)))
	client := devClient(realm.Client, d, scheme+"://"+host)
	b, err := devbroker.New(devbroker.Options{
		Client:     client,
		Issuer:     scheme + "://" + host + "/realms/" + d.DevRealm,
		Realm:      d.DevRealm,
		ClientID:   clientID,
		Audience:   audience,
		Users:      users,
		AccessTTL:  d.DevTokenTTL,
		SigningKey: key,
		Logger:     newLogger(opts.IO.ErrOut, cfg.LogFormat).With("component", "devbroker"),
	})
	if err != nil {
		return "", cmdutil.Usagef("--dev: %w", err)
	}
	prefix := "/realms/" + d.DevRealm
	mux.Handle(prefix, b.Handler())
	mux.Handle(prefix+"/", b.Handler())
	printDevBanner(opts.IO.ErrOut, b, d)
	return b.Issuer(), nil
}

// devClient is the public client's settings: the realm file's, the flags'
// redirect URIs and web origins, and this server's dashboard (origin +
// /dashboard/*) as a redirect URI, post-logout redirect URI and web origin.
func devClient(cs devbroker.ClientSettings, d devOptions, origin string) devbroker.ClientSettings {
	dashboard := origin + dashboardPath + "*"
	cs.RedirectURIs = append(slices.Clone(cs.RedirectURIs), d.DevRedirects...)
	cs.RedirectURIs = append(cs.RedirectURIs, dashboard)
	if len(cs.PostLogoutRedirectURIs) > 0 && !slices.Contains(cs.PostLogoutRedirectURIs, "+") {
		cs.PostLogoutRedirectURIs = append(slices.Clone(cs.PostLogoutRedirectURIs), dashboard)
	}
	cs.WebOrigins = append(slices.Clone(cs.WebOrigins), d.DevWebOrigins...)
	if len(cs.WebOrigins) == 0 {
		cs.WebOrigins = []string{"+"}
	}
	cs.WebOrigins = append(cs.WebOrigins, origin)
	return cs
}

// devHost is the issuer's host:port for the listener's address. A
// non-loopback address needs allowRemote; an unspecified one (0.0.0.0, ::)
// is then named by the machine's host name.
func devHost(addr net.Addr, allowRemote bool) (string, error) {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return "", fmt.Errorf("--dev needs a TCP listener, not %s", addr.Network())
	}
	port := fmt.Sprint(tcp.Port)
	if tcp.IP.IsLoopback() {
		return net.JoinHostPort(tcp.IP.String(), port), nil
	}
	if !allowRemote {
		return "", cmdutil.Usagef("--dev refuses to listen on %s, which other machines can reach: the development "+
			"broker's users and passwords are well known. Use --listen 127.0.0.1:PORT, or add --dev-allow-remote "+
			"if you accept that risk", addr)
	}
	if tcp.IP.IsUnspecified() {
		name, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("--dev on %s: cannot name this machine for the issuer (%w); give --listen HOST:PORT", addr, err)
		}
		return net.JoinHostPort(name, port), nil
	}
	return net.JoinHostPort(tcp.IP.String(), port), nil
}

func libraryHandler(w io.Writer, format string) slog.Handler {
	ho := &slog.HandlerOptions{Level: slog.LevelWarn}
	if format == "json" {
		return slog.NewJSONHandler(w, ho)
	}
	return slog.NewTextHandler(w, ho)
}

func printDevBanner(w io.Writer, b *devbroker.Broker, d devOptions) {
	var s strings.Builder
	s.WriteString("DEVELOPMENT BROKER — in-memory, not for production\n")
	fmt.Fprintf(&s, "  issuer:  %s\n", b.Issuer())
	fmt.Fprintf(&s, "  client:  %s (public; redirects: any loopback port, %s; web origins: %s)\n",
		b.ClientID(), strings.Join(b.ClientRedirectURIs(), ", "), strings.Join(b.ClientWebOrigins(), ", "))
	for i, u := range b.Users() {
		label := "         "
		if i == 0 {
			label = "  users: "
		}
		roles := "no roles"
		if len(u.Roles) > 0 {
			roles = "roles " + strings.Join(u.Roles, ",")
		}
		fmt.Fprintf(&s, "%s %s / password %s (%s)\n", label, u.Name, u.Password, roles)
	}
	key := "generated: tokens die with this process (keep it with --dev-key FILE)"
	if d.DevKeyFile != "" {
		key = "kept in " + d.DevKeyFile
	}
	fmt.Fprintf(&s, "  tokens:  access %s, refresh %s; signing key %s\n", d.DevTokenTTL, devbroker.DefaultRefreshTTL, key)
	_, _ = io.WriteString(w, s.String())
}
