// Package devbroker is a development OpenID Provider shaped like Keycloak, for
// "pbench-auth serve --dev" and for tests: one realm, one public client, a few
// users with passwords, everything in memory.
//
// It is built on github.com/zitadel/oidc/v3/pkg/op, which handles the protocol
// (authorization code with PKCE, refresh, device authorization, revocation,
// introspection, userinfo, discovery, JWKS); this package adds the storage,
// the login, device and logout pages, and what Keycloak's own clients
// (keycloak-js, Pbench's Python code) rely on: addresses under
// {issuer}/protocol/openid-connect/, the realm info document at the issuer,
// access token claims (realm_access, resource_access, sid, typ, ...), JWT
// refresh tokens, token response fields (refresh_expires_in, session_state,
// ...), a browser SSO session with prompt=none, keycloak-js's iframes
// (3p-cookies, login-status-iframe.html), RP-initiated logout, per-client
// redirect URI patterns and web origins (CORS), and the password grant.
//
// DANGER: it is a development tool. Passwords are compared in plain text,
// state is lost on restart, and the redirect policy trusts any loopback
// address. Never expose it to other machines.
package devbroker

import (
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// Defaults, Keycloak's where Keycloak has one.
const (
	DefaultRealm      = "pbench-server"
	DefaultClientID   = "pbench-client"
	DefaultAccessTTL  = 5 * time.Minute  // Keycloak's "Access Token Lifespan"
	DefaultRefreshTTL = 30 * time.Minute // Keycloak's "SSO Session Idle"
	// DefaultIntrospectionClientID is the confidential client allowed to
	// call the introspection endpoint (see Options.IntrospectionSecret).
	DefaultIntrospectionClientID = "pbench-server"
	// DefaultResourceServer is the audience Pbench's Keycloak setup adds to
	// access tokens with an audience mapper, and the client under whose
	// resource_access Pbench's server reads roles.
	DefaultResourceServer = "pbench-server"

	deviceCodeTTL  = 10 * time.Minute // Keycloak's "OAuth 2.0 Device Code Lifespan"
	devicePollRate = 5 * time.Second
	authRequestTTL = 10 * time.Minute
	offlineTTL     = 30 * 24 * time.Hour // Keycloak's "Offline Session Idle"
	oidcPath       = "protocol/openid-connect"
)

// User is an account of the development broker.
type User struct {
	Name     string
	Password string
	// Roles are given to the user both as realm roles (realm_access.roles)
	// and as client roles of the client (resource_access.<client>.roles);
	// Pbench's ADMIN is a client role.
	Roles []string
	// Email defaults to Name@example.com.
	Email string
}

// Options configure a Broker. Only Issuer is required.
type Options struct {
	// Issuer is the absolute URL of the realm, e.g.
	// http://127.0.0.1:8080/realms/pbench-server. Its path is where Handler
	// expects to be mounted. Plain http is allowed (this is a dev broker).
	Issuer string
	// Realm is the realm name reported in the realm info; default: the last
	// path element of Issuer.
	Realm string
	// ClientID of the public client; default pbench-client.
	ClientID string
	// Audience is the access token's aud; default [ClientID,
	// DefaultResourceServer, "account"]. The user's roles appear as client
	// roles (resource_access) of ClientID and of every audience but
	// "account", as Pbench's server reads them from
	// resource_access["pbench-server"].
	Audience []string
	// Client are the public client's settings (redirect URIs, web origins,
	// PKCE, password grant); the zero value accepts loopback redirects only.
	Client ClientSettings
	// Users who may log in. Default: none (nobody can log in).
	Users []User
	// AccessTTL is the access token lifetime (default 5m); RefreshTTL the
	// refresh token and session idle lifetime (default 30m).
	AccessTTL, RefreshTTL time.Duration
	// SigningKey signs tokens (RS256); a 2048-bit key is generated if nil,
	// so tokens do not survive a restart unless the key is kept (see
	// LoadOrCreateKey).
	SigningKey *rsa.PrivateKey
	// IntrospectionSecret is the secret of the confidential client
	// DefaultIntrospectionClientID, the only client allowed to introspect
	// tokens (HTTP basic auth). A random one is generated if empty; read it
	// with (*Broker).IntrospectionCredentials.
	IntrospectionSecret string
	// Now is the clock for lifetimes (token exp, refresh and code expiry);
	// default time.Now. The op library stamps iat with the wall clock.
	Now func() time.Time
	// Logger receives login events (never a password or a token); default
	// discards.
	Logger *slog.Logger
}

// Broker is a running development OpenID Provider. It is safe for concurrent use.
type Broker struct {
	issuer   *url.URL
	realm    string
	clientID string
	key      *signingKey
	store    *store
	server   *legacyServer
	handler  http.Handler
	log      *slog.Logger
	formKey  []byte // ties confirmation forms to a browser session
}

// New validates opts and builds a Broker.
func New(opts Options) (*Broker, error) {
	issuer, err := url.Parse(opts.Issuer)
	if err != nil || (issuer.Scheme != "http" && issuer.Scheme != "https") || issuer.Host == "" {
		return nil, fmt.Errorf("issuer %q is not an absolute http(s) URL such as http://127.0.0.1:8080/realms/%s", opts.Issuer, DefaultRealm)
	}
	issuer.Path = strings.TrimSuffix(issuer.Path, "/")
	if issuer.RawQuery != "" || issuer.Fragment != "" {
		return nil, fmt.Errorf("issuer %q must not have a query or fragment", opts.Issuer)
	}
	if opts.Realm == "" {
		opts.Realm = issuer.Path[strings.LastIndex(issuer.Path, "/")+1:]
		if opts.Realm == "" {
			opts.Realm = DefaultRealm
		}
	}
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if len(opts.Audience) == 0 {
		opts.Audience = []string{opts.ClientID, DefaultResourceServer, "account"}
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = DefaultAccessTTL
	}
	if opts.RefreshTTL <= 0 {
		opts.RefreshTTL = DefaultRefreshTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.IntrospectionSecret == "" {
		opts.IntrospectionSecret = rand.Text()
	}
	users, err := newDirectory(opts.Realm, opts.Users)
	if err != nil {
		return nil, err
	}
	if opts.SigningKey == nil {
		if opts.SigningKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
	}
	key, err := newSigningKey(opts.SigningKey)
	if err != nil {
		return nil, err
	}
	rkey, err := newRefreshKey()
	if err != nil {
		return nil, err
	}
	client, err := newClientConfig(opts.Client)
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", opts.ClientID, err)
	}

	b := &Broker{
		issuer:   issuer,
		realm:    opts.Realm,
		clientID: opts.ClientID,
		key:      key,
		log:      opts.Logger,
		formKey:  []byte(rand.Text()),
	}
	b.store = newStore(&opts, users, key)
	b.store.refreshKey, b.store.client = rkey, client
	b.server, err = newLegacyServer(b.Issuer(), b.store)
	if err != nil {
		return nil, err
	}
	b.handler = b.routes()
	return b, nil
}

// Issuer is the issuer URL, without a trailing slash.
func (b *Broker) Issuer() string { return b.issuer.String() }

// Realm is the realm name.
func (b *Broker) Realm() string { return b.realm }

// ClientID is the public client's id.
func (b *Broker) ClientID() string { return b.clientID }

// IntrospectionCredentials are the client id and secret to send with HTTP
// basic auth to {issuer}/protocol/openid-connect/token/introspect.
func (b *Broker) IntrospectionCredentials() (clientID, secret string) {
	return DefaultIntrospectionClientID, b.store.introspectionSecret
}

// Users returns the configured users (with their passwords: this is for
// the development banner).
func (b *Broker) Users() []User { return b.store.users.list() }

// Handler serves the realm. Mount it at the issuer's path and below, e.g.
//
//	mux.Handle("/realms/pbench-server", h)
//	mux.Handle("/realms/pbench-server/", h)
//
// Requests are expected with their full path (it strips the issuer path itself).
func (b *Broker) Handler() http.Handler { return b.handler }

func (b *Broker) routes() http.Handler {
	mux := http.NewServeMux()
	public := publicCORS()
	mux.Handle("GET /{$}", public.Handler(http.HandlerFunc(b.realmInfo)))
	mux.HandleFunc("/login-actions/authenticate", b.login)
	mux.HandleFunc("/device", b.device)
	mux.HandleFunc("POST /device/consent", b.deviceConsent)
	mux.HandleFunc("GET /logged-out", b.loggedOut)
	mux.Handle("/"+oidcPath+"/logout", b.clientCORS(http.HandlerFunc(b.logout)))
	mux.Handle("/"+oidcPath+"/token", b.clientCORS(http.HandlerFunc(b.token)))
	mux.Handle("/"+oidcPath+"/userinfo", b.clientCORS(b.server.handler))
	mux.Handle("/"+oidcPath+"/revoke", b.clientCORS(b.server.handler))
	mux.HandleFunc("GET /"+oidcPath+"/3p-cookies/step1.html", b.thirdPartyStep1)
	mux.HandleFunc("GET /"+oidcPath+"/3p-cookies/step2.html", b.thirdPartyStep2)
	mux.HandleFunc("GET /"+oidcPath+"/login-status-iframe.html", b.loginStatusIframe)
	mux.HandleFunc("GET /"+oidcPath+"/login-status-iframe.html/init", b.loginStatusInit)
	mux.Handle("/"+oidcPath+"/certs", public.Handler(b.server.handler))
	mux.Handle("/.well-known/", public.Handler(b.server.handler))
	mux.Handle("/", b.server.handler)

	prefix := b.issuer.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + strings.TrimPrefix(rest, "/")
		r2.URL.RawPath = ""
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Referrer-Policy", "no-referrer")
		mux.ServeHTTP(w, r2)
	})
}

// realmInfo answers GET {issuer} like Keycloak: the realm's public key and
// service addresses.
func (b *Broker) realmInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"realm":             b.realm,
		"public_key":        b.key.publicKeyBase64,
		"token-service":     b.Issuer() + "/" + oidcPath,
		"account-service":   b.Issuer() + "/account",
		"tokens-not-before": 0,
	})
}

// endpoints are Keycloak's addresses, relative to the issuer.
func endpoints() op.Endpoints {
	e := func(p string) *op.Endpoint { return op.NewEndpoint(oidcPath + "/" + p) }
	return op.Endpoints{
		Authorization:       e("auth"),
		Token:               e("token"),
		Introspection:       e("token/introspect"),
		Userinfo:            e("userinfo"),
		Revocation:          e("revoke"),
		EndSession:          e("logout"),
		JwksURI:             e("certs"),
		DeviceAuthorization: e("auth/device"),
	}
}

// ParseUserSpec parses NAME:PASSWORD[:ROLE,ROLE] (the --dev-user flag).
// The password may not contain ':'.
func ParseUserSpec(spec string) (User, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		// The spec holds a password: name only the user in the error.
		return User{}, fmt.Errorf("user %q: want NAME:PASSWORD or NAME:PASSWORD:ROLE,ROLE (the password may not contain ':')", parts[0])
	}
	u := User{Name: strings.TrimSpace(parts[0]), Password: parts[1]}
	if u.Name == "" || u.Password == "" {
		return User{}, errors.New("user spec: the name and the password must not be empty (want NAME:PASSWORD[:ROLE,ROLE])")
	}
	if len(parts) == 3 {
		for r := range strings.SplitSeq(parts[2], ",") {
			if r = strings.TrimSpace(r); r != "" && !slices.Contains(u.Roles, r) {
				u.Roles = append(u.Roles, r)
			}
		}
	}
	return u, nil
}

// ClientRedirectURIs are the public client's redirect URI patterns besides
// LoopbackRedirectURIs.
func (b *Broker) ClientRedirectURIs() []string {
	return slices.DeleteFunc(slices.Clone(b.store.client.redirects), func(p string) bool {
		return slices.Contains(LoopbackRedirectURIs, p)
	})
}

// ClientWebOrigins are the origins allowed to call the public client's
// endpoints from a browser (CORS); "*" means any.
func (b *Broker) ClientWebOrigins() []string { return slices.Clone(b.store.client.origins) }
