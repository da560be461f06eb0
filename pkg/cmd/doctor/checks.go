package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Status is a check's outcome.
type Status string

// A failure would stop login or call from working; a warning would not.
const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	// StatusSkip: the check needs what an earlier failed check would have found.
	StatusSkip Status = "skip"
)

// marks are the statuses as shown at the start of a line: a word that a
// script can grep, or a symbol on a terminal.
var marks = map[Status]struct{ text, tty string }{
	StatusOK:   {"ok  ", "✓"},
	StatusWarn: {"warn", "!"},
	StatusFail: {"FAIL", "✗"},
	StatusSkip: {"skip", "-"},
}

func (s Status) mark(tty bool) string {
	if tty {
		return marks[s].tty
	}
	return marks[s].text
}

// Result is one check: one line of the report, and how to fix it.
type Result struct {
	Name    string `json:"name"`
	Status  Status `json:"status"`
	Message string `json:"message"`
	// Fix says what to do; set for every failure and warning.
	Fix string `json:"fix,omitempty"`
}

// Clock skew thresholds. WarnSkew is the server's default token leeway and
// the CLI's refresh margin; beyond FailSkew (Keycloak's default access token
// lifetime, and the largest leeway `serve` accepts) fresh tokens look expired
// or not yet valid.
const (
	WarnSkew = 30 * time.Second
	FailSkew = 5 * time.Minute
)

// doctor runs the checks in order; later checks use what earlier ones found.
type doctor struct {
	opts *Options
	hc   *http.Client // the client of server's profile
	kind string       // auto, keyring or file
	// server is the resolved --server, or "" with serverErr saying why not.
	server    string
	serverErr error
}

func (d *doctor) run(ctx context.Context) *Report {
	rep := &Report{}
	add := func(r Result) { rep.Checks = append(rep.Checks, r) }
	skip := func(why string, names ...string) {
		for _, n := range names {
			add(Result{Name: n, Status: StatusSkip, Message: "not checked: " + why})
		}
	}

	server, err := d.server, d.serverErr
	var ep *discovery.Endpoints
	var broker *discovery.Broker
	if err != nil {
		add(Result{Name: "server", Status: StatusFail, Message: err.Error(),
			Fix: "pass --server URL, set PBENCH_SERVER, or set default-server in the config file"})
		skip("no server", "clock", "issuer", "pkce", "device")
	} else {
		rep.Server = server
		var res Result
		var clock *clockProbe
		res, ep, clock = d.checkServer(ctx, server)
		add(res)
		if clock.seen() {
			add(checkClock(clock))
		} else {
			skip("needs an answer from the server", "clock")
		}
		if ep == nil {
			skip("needs the broker named by the server's endpoints", "issuer", "pkce", "device")
		} else {
			res, broker = d.checkIssuer(ctx, ep.OpenID.IssuerURL(), ep.OpenID.Client)
			add(res)
			if broker == nil {
				skip("needs the broker's discovery document", "pkce", "device")
			} else {
				add(checkPKCE(broker))
				add(checkDevice(broker))
			}
		}
	}
	urls := []string{server}
	if ep != nil {
		urls = append(urls, ep.OpenID.IssuerURL())
	}
	add(checkProxy(d.opts.Getenv, urls...))
	var trust func() (cmdutil.CATrust, error)
	if d.opts.CATrust != nil {
		trust = func() (cmdutil.CATrust, error) { return d.opts.CATrust(server) }
	}
	add(withCLICAs(checkCA(d.opts.Getenv), trust))

	res, effective := checkKeyring(d.opts.ProbeKeyring, d.kind, d.opts.StateDir())
	add(res)
	switch {
	case server == "":
		skip("no server", "tokens")
	case effective == "":
		skip("the token store cannot be opened", "tokens")
	default:
		announced := ""
		if ep != nil {
			announced = ep.OpenID.IssuerURL()
		}
		add(d.checkTokens(effective, server, announced))
	}

	rep.OK = true
	for _, r := range rep.Checks {
		if r.Status == StatusFail {
			rep.OK = false
		}
	}
	return rep
}

// checkServer is seed steps 1–2: GET /api/v1/endpoints, through
// pkg/discovery. The clock probe records the answer's Date header.
func (d *doctor) checkServer(ctx context.Context, server string) (Result, *discovery.Endpoints, *clockProbe) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	probe := &clockProbe{base: d.hc.Transport, now: d.opts.Now}
	hc := *d.hc
	hc.Transport = probe
	ep, err := discovery.FetchEndpoints(ctx, &hc, server)
	if err == nil {
		return Result{Name: "server", Status: StatusOK, Message: fmt.Sprintf("%s%s names broker %s and client %q",
			server, discovery.EndpointsPath, ep.OpenID.IssuerURL(), ep.OpenID.Client)}, ep, probe
	}
	res := Result{Name: "server", Status: StatusFail, Message: err.Error()}
	switch {
	case isUntrustedCert(err):
		res.Fix = "the server's TLS certificate is not trusted here: pass its CA with --ca-cert FILE (or $PBENCH_AUTH_CA_CERT, or ca-cert in the server's profile of the config file)"
	case ctx.Err() != nil:
		res.Message = fmt.Sprintf("no answer from %s within %s", server, d.opts.Timeout)
		res.Fix = "check the URL and that the server is up; a firewall may drop the connection" + proxyHint(d.opts.Getenv, server)
	case cmdutil.ExitCode(err) == cmdutil.ExitNetwork:
		res.Fix = fmt.Sprintf("check the URL and that the server is up (curl -sS %s%s)", server, discovery.EndpointsPath) + proxyHint(d.opts.Getenv, server)
	default:
		res.Fix = "--server must be the Pbench server's base URL (where /api/v1/endpoints is), not the broker's or the dashboard's"
	}
	return res, nil, probe
}

// checkIssuer is OpenID discovery through pkg/discovery, which insists on an
// exact issuer; a mismatch is explained part by part.
func (d *doctor) checkIssuer(ctx context.Context, issuer, clientID string) (Result, *discovery.Broker) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	b, err := discovery.Discover(ctx, d.hc, issuer, clientID)
	if err == nil {
		return Result{Name: "issuer", Status: StatusOK, Message: fmt.Sprintf("the broker's discovery document names exactly %s", issuer)}, b
	}
	res := Result{Name: "issuer", Status: StatusFail, Message: err.Error()}
	var mismatch *discovery.IssuerMismatchError
	switch {
	case errors.As(err, &mismatch):
		res.Message = fmt.Sprintf("the server announces issuer %q, but the broker's discovery document (%s) names %q: %s",
			mismatch.Expected, mismatch.WellKnown, mismatch.Discovered, issuerDifference(mismatch.Expected, mismatch.Discovered))
		res.Fix = fmt.Sprintf("the server's operator must announce exactly %q (serve --issuer)", mismatch.Discovered)
	case isUntrustedCert(err):
		res.Fix = "the broker's TLS certificate is not trusted here: pass its CA with --ca-cert FILE (or $PBENCH_AUTH_CA_CERT, or ca-cert in the server's profile of the config file)"
	case ctx.Err() != nil:
		res.Message = fmt.Sprintf("no answer from the broker at %s within %s", issuer, d.opts.Timeout)
		res.Fix = "check that the broker is up and reachable from this machine" + proxyHint(d.opts.Getenv, issuer)
	case cmdutil.ExitCode(err) == cmdutil.ExitNetwork:
		res.Fix = "check that the broker is up and reachable from this machine" + proxyHint(d.opts.Getenv, issuer)
	default:
		res.Fix = "the server announces an issuer without a discovery document: its operator must fix serve --issuer"
	}
	return res, nil
}

// issuerDifference says which part of two issuer URLs differs.
func issuerDifference(announced, discovered string) string {
	if strings.TrimSuffix(announced, "/") == strings.TrimSuffix(discovered, "/") {
		if strings.HasSuffix(announced, "/") {
			return "they differ only by the announced issuer's trailing slash"
		}
		return "they differ only by the discovered issuer's trailing slash"
	}
	a, aerr := url.Parse(announced)
	b, berr := url.Parse(discovered)
	if aerr != nil || berr != nil {
		return "issuers are compared as exact strings"
	}
	var diffs []string
	if a.Scheme != b.Scheme {
		diffs = append(diffs, fmt.Sprintf("scheme %s vs %s", a.Scheme, b.Scheme))
	}
	if !strings.EqualFold(a.Hostname(), b.Hostname()) {
		diffs = append(diffs, fmt.Sprintf("host %s vs %s", a.Hostname(), b.Hostname()))
	} else if a.Hostname() != b.Hostname() {
		diffs = append(diffs, "the host's letter case")
	}
	if a.Port() != b.Port() {
		diffs = append(diffs, fmt.Sprintf("port %q vs %q", a.Port(), b.Port()))
	}
	if a.Path != b.Path {
		d := fmt.Sprintf("path %s vs %s", a.Path, b.Path)
		if strings.Contains(a.Path, "/auth/realms/") != strings.Contains(b.Path, "/auth/realms/") {
			d += " (Keycloak 16 and older put /auth before /realms)"
		}
		diffs = append(diffs, d)
	}
	if len(diffs) == 0 {
		return "issuers are compared as exact strings"
	}
	return "they differ in " + strings.Join(diffs, ", ")
}

// checkPKCE: login sends S256 unless the broker lists PKCE methods without it.
func checkPKCE(b *discovery.Broker) Result {
	methods := b.Metadata.CodeChallengeMethodsSupported
	switch {
	case len(methods) == 0:
		return Result{Name: "pkce", Status: StatusWarn,
			Message: "the broker does not list code_challenge_methods_supported; login sends S256 anyway, but cannot tell whether the broker checks it",
			Fix:     "enable PKCE S256 for the client at the broker (Keycloak: client → Advanced → PKCE method S256)"}
	case !b.SupportsPKCES256():
		return Result{Name: "pkce", Status: StatusFail,
			Message: fmt.Sprintf("the broker supports PKCE %s but not S256: login would run without PKCE, so an intercepted authorization code could be redeemed by someone else", strings.Join(methods, ", ")),
			Fix:     "enable PKCE S256 at the broker (Keycloak: client → Advanced → PKCE method S256)"}
	}
	return Result{Name: "pkce", Status: StatusOK, Message: "the broker supports PKCE S256"}
}

// checkDevice: the device grant is optional (login --device needs it).
func checkDevice(b *discovery.Broker) Result {
	if ep := b.Metadata.DeviceAuthorizationEndpoint; ep != "" {
		return Result{Name: "device", Status: StatusOK,
			Message: "the broker offers the device grant at " + ep + " (the client must allow it too)"}
	}
	return Result{Name: "device", Status: StatusWarn,
		Message: "the broker has no device_authorization_endpoint: login --device will not work",
		Fix:     "on a host without a browser use login --no-browser; or enable the device grant at the broker (Keycloak: client → OAuth 2.0 Device Authorization Grant)"}
}

// clockProbe is a RoundTripper that remembers, for the first response with a
// Date header, that header and the local clock just before the request and
// just after the response.
type clockProbe struct {
	base http.RoundTripper
	now  func() time.Time

	sent, received, date time.Time
}

func (p *clockProbe) RoundTrip(req *http.Request) (*http.Response, error) {
	base := p.base
	if base == nil {
		base = http.DefaultTransport
	}
	sent := p.now()
	resp, err := base.RoundTrip(req)
	if err != nil || !p.date.IsZero() {
		return resp, err
	}
	if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
		p.sent, p.received, p.date = sent, p.now(), date
	}
	return resp, nil
}

func (p *clockProbe) seen() bool { return !p.date.IsZero() }

// skew is how far the local clock is ahead of the server's (negative:
// behind): the smallest offset consistent with the server having stamped
// Date (whole seconds, truncated) between sent and received.
func (p *clockProbe) skew() time.Duration {
	lo := p.sent.Sub(p.date.Add(time.Second))
	hi := p.received.Sub(p.date)
	switch {
	case lo > 0:
		return lo
	case hi < 0:
		return hi
	}
	return 0
}

func checkClock(p *clockProbe) Result {
	skew := p.skew()
	off := skew.Abs().Round(time.Second)
	if off <= WarnSkew {
		return Result{Name: "clock", Status: StatusOK, Message: fmt.Sprintf("within %s of the server's clock (its Date header)", max(off, time.Second))}
	}
	var msg string
	if skew > 0 {
		msg = fmt.Sprintf("this machine's clock is at least %s ahead of the server's: fresh tokens look about to expire, so they are refreshed early or refused as expired", off)
	} else {
		msg = fmt.Sprintf("this machine's clock is at least %s behind the server's: tokens are used after the server considers them expired (401), and new ones may look not yet valid", off)
	}
	res := Result{Name: "clock", Status: StatusWarn, Message: msg,
		Fix: "synchronise the clock with NTP (e.g. `timedatectl set-ntp true`, chronyd or ntpd)"}
	if off > FailSkew {
		res.Status = StatusFail
	}
	return res
}

// checkKeyring probes the OS keyring and says which store holds the tokens.
// effective is the kind of store the tokens are in ("" when none can be
// used), as auto would choose.
func checkKeyring(probe func() error, kind, stateDir string) (res Result, effective string) {
	name := keyringName()
	err := probe()
	switch {
	case err == nil && kind == tokenstore.KindFile:
		return Result{Name: "keyring", Status: StatusOK,
			Message: fmt.Sprintf("the %s works, but tokens are kept in files under %s, as --token-store file asks", name, stateDir)}, tokenstore.KindFile
	case err == nil:
		return Result{Name: "keyring", Status: StatusOK,
			Message: fmt.Sprintf("the %s works (a test entry was written, read back and deleted); %s keeps tokens there", name, kind)}, tokenstore.KindKeyring
	case kind == tokenstore.KindFile:
		return Result{Name: "keyring", Status: StatusOK,
			Message: fmt.Sprintf("the %s cannot be used, and is not needed: --token-store file keeps tokens under %s", name, stateDir)}, tokenstore.KindFile
	case kind == tokenstore.KindKeyring:
		return Result{Name: "keyring", Status: StatusFail, Message: fmt.Sprintf("the %s cannot hold tokens: %v", name, err),
			Fix: keyringFix() + ", or pass --token-store file"}, ""
	default:
		return Result{Name: "keyring", Status: StatusWarn,
			Message: fmt.Sprintf("the %s cannot hold tokens (%v); auto falls back to files (0600) under %s", name, err, stateDir),
			Fix:     keyringFix() + ", or pass --token-store file to choose files explicitly"}, tokenstore.KindFile
	}
}

func keyringName() string {
	switch runtime.GOOS {
	case "darwin":
		return "macOS Keychain"
	case "windows":
		return "Windows Credential Manager"
	}
	return "OS keyring (Secret Service)"
}

func keyringFix() string {
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		return "unlock the keychain"
	}
	return "unlock the login keyring, or start a Secret Service (gnome-keyring, KeePassXC) in this session"
}

// checkTokens reads the profile's stored tokens — without printing or
// refreshing them — and says whether call can use them.
func (d *doctor) checkTokens(kind, profile, announcedIssuer string) Result {
	login := session.LoginCommand(profile, nil)
	store, err := d.opts.OpenStore(kind)
	if err != nil {
		return Result{Name: "tokens", Status: StatusFail, Message: "cannot open the token store: " + err.Error(), Fix: "see the keyring line above"}
	}
	ts, err := store.Load(profile)
	switch {
	case errors.Is(err, tokenstore.ErrNotFound):
		return Result{Name: "tokens", Status: StatusFail, Message: fmt.Sprintf("not logged in to %s (%s)", profile, store.Location(profile)),
			Fix: "run `" + login + "`"}
	case err != nil:
		return Result{Name: "tokens", Status: StatusFail, Message: err.Error(), Fix: "then run `" + login + "`"}
	}
	login = session.LoginCommand(profile, ts)
	if announcedIssuer != "" && ts.Issuer != announcedIssuer {
		return Result{Name: "tokens", Status: StatusFail,
			Message: fmt.Sprintf("the stored tokens were issued by %s, but the server now announces %s: it will refuse them", ts.Issuer, announcedIssuer),
			Fix:     "run `" + login + "`"}
	}
	now := d.opts.Now()
	where := fmt.Sprintf(" (%s)", store.Location(profile))
	refresh := "no refresh token"
	switch {
	case ts.RefreshToken != "" && ts.RefreshExpiry.IsZero():
		refresh = "a refresh token with no stated expiry"
	case ts.RefreshToken != "":
		refresh = "a refresh token " + until(ts.RefreshExpiry, now)
	}
	switch {
	case ts.Expiry.IsZero() || now.Before(ts.Expiry):
		return Result{Name: "tokens", Status: StatusOK, Message: fmt.Sprintf("logged in: access token %s, %s%s",
			until(ts.Expiry, now), refresh, where)}
	case ts.RefreshToken == "":
		return Result{Name: "tokens", Status: StatusFail,
			Message: fmt.Sprintf("session expired: the access token expired at %s and there is no refresh token%s", stamp(ts.Expiry), where),
			Fix:     "run `" + login + "`"}
	case !ts.RefreshExpiry.IsZero() && !now.Before(ts.RefreshExpiry):
		return Result{Name: "tokens", Status: StatusFail,
			Message: fmt.Sprintf("session expired: the access token expired at %s, the refresh token at %s%s", stamp(ts.Expiry), stamp(ts.RefreshExpiry), where),
			Fix:     "run `" + login + "`"}
	}
	return Result{Name: "tokens", Status: StatusOK,
		Message: fmt.Sprintf("the access token expired at %s, but %s: the next command refreshes it%s", stamp(ts.Expiry), refresh, where)}
}

func until(t, now time.Time) string {
	if t.IsZero() {
		return "with no stated expiry"
	}
	return fmt.Sprintf("valid until %s (in %s)", stamp(t), t.Sub(now).Round(time.Second))
}

func stamp(t time.Time) string { return t.Local().Format(time.RFC3339) }

// isUntrustedCert reports a TLS failure to verify the peer's certificate.
func isUntrustedCert(err error) bool {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	return errors.As(err, &cve) || errors.As(err, &uae)
}
