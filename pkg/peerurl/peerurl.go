// Package peerurl checks the URLs that a peer hands pbench-auth: the Pbench
// server's /api/v1/endpoints answer ("openid.server", "openid.issuer") and an
// identity broker's discovery document (authorization, token, device,
// revocation, end-session, userinfo, introspection endpoints, jwks_uri).
// Every such URL is checked here, and only here, before it is used: a
// relative or schemeless value would otherwise be resolved against whatever
// the caller happens to prepend ("/" + "/realms/x" is an issuer of no host).
//
// It accepts any absolute http or https URL with a host. Which of those may
// reach a browser, or carry a secret, is decided by the caller.
package peerurl

import (
	"errors"
	"fmt"
	"net/url"
)

// ErrNotAbsolute is wrapped by every error of Check.
var ErrNotAbsolute = errors.New("not an absolute http(s) URL with a host")

// maxShown bounds how much of a bad value an error repeats: a hostile peer
// must not fill the user's terminal.
const maxShown = 200

// Check parses raw, a URL that source (e.g. "the Pbench server at
// https://pbench.example.com") sent as field (e.g. `"openid.server"`), and
// returns it if it is an absolute http or https URL with a host name. The
// error otherwise names the field, the value (truncated) and the source, and
// wraps ErrNotAbsolute. An empty raw is an error too: callers check optional
// fields only when present.
func Check(field, source, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil, u.Opaque != "", u.Scheme != "http" && u.Scheme != "https", u.Hostname() == "":
		return nil, fmt.Errorf("%s sent %s %.*q: %w; ask its operator to fix its configuration",
			source, field, maxShown, raw, ErrNotAbsolute)
	}
	return u, nil
}
