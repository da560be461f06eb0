package cmdutil

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
)

// AllowInsecureHTTPEnv, set to 1 or true, is --allow-insecure-http for every
// command.
const AllowInsecureHTTPEnv = "PBENCH_AUTH_ALLOW_INSECURE_HTTP"

// InsecureHTTPError is a plain http request to a host that is not loopback,
// refused: it would carry the login code, the PKCE verifier, refresh and
// access tokens in clear over the network.
type InsecureHTTPError struct {
	// URL is the address refused, without query or credentials.
	URL string
}

func (e *InsecureHTTPError) Error() string {
	return fmt.Sprintf("refusing plain http to %s: tokens would cross the network unencrypted; use https "+
		"(or, for a test setup only, --allow-insecure-http or %s=1)", e.URL, AllowInsecureHTTPEnv)
}

// allowInsecureHTTP says whether this run may send plain http to hosts that
// are not loopback: --allow-insecure-http or $PBENCH_AUTH_ALLOW_INSECURE_HTTP.
func (f *Factory) allowInsecureHTTP() bool {
	if f.AllowInsecureHTTP {
		return true
	}
	v, _ := strconv.ParseBool(f.Getenv(AllowInsecureHTTPEnv))
	return v
}

// CheckPlainHTTP refuses an http URL whose host is not loopback, unless this
// run allows it (then it warns: once per host and run). Other URLs pass.
func (f *Factory) CheckPlainHTTP(raw string) error {
	if u, err := url.Parse(raw); err == nil {
		return f.plainHTTP().check(u)
	}
	return nil // not a URL: not for this check to judge
}

func (f *Factory) plainHTTP() *plainHTTPGuard {
	if f.guard == nil {
		f.guard = &plainHTTPGuard{allow: f.allowInsecureHTTP, warn: f.IO.ErrOut, warned: map[string]bool{}}
	}
	return f.guard
}

// plainHTTPGuard refuses, or warns about, plain http to hosts that are not
// loopback.
type plainHTTPGuard struct {
	allow func() bool // read at each request: flags are parsed after New
	warn  io.Writer

	mu     sync.Mutex
	warned map[string]bool
}

func (g *plainHTTPGuard) check(u *url.URL) error {
	if !strings.EqualFold(u.Scheme, "http") || netutil.IsLoopback(u.Hostname()) {
		return nil
	}
	where := (&url.URL{Scheme: "http", Host: u.Host, Path: u.Path}).String()
	if !g.allow() {
		return &InsecureHTTPError{URL: where}
	}
	g.mu.Lock()
	first := !g.warned[u.Host]
	g.warned[u.Host] = true
	g.mu.Unlock()
	if first {
		_, _ = fmt.Fprintf(g.warn, "warning: --allow-insecure-http: sending requests to http://%s in clear: anyone on the network path can read "+
			"and change them, tokens included. Use https.\n", u.Host)
	}
	return nil
}

// plainHTTPTransport applies the guard to every request, redirects included.
type plainHTTPTransport struct {
	base  http.RoundTripper
	guard *plainHTTPGuard
}

func (t *plainHTTPTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.guard.check(req.URL); err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	return t.base.RoundTrip(req)
}
