// Package redact hides secrets before they reach a trace, a log or an error
// message: tokens, codes, verifiers, the per-login values of an
// authorization URL, the query of a request URL, a proxy's password; and it
// makes a peer's strings printable for messages (Printable). It is a
// leaf package, so that every layer (domain packages, commands, server) can
// use it.
package redact

import (
	"fmt"
	"net/url"
	"strings"
)

// Secret shows the shape of a secret without revealing it: its length only,
// or "(none)" when it is empty.
func Secret(secret string) string {
	if secret == "" {
		return "(none)"
	}
	return fmt.Sprintf("[redacted %d bytes]", len(secret))
}

// AuthURL hides the per-login values of an authorization URL (state, nonce,
// code_challenge) for the -v trace; the rest is shown as sent.
func AuthURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	q := u.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if q.Has(k) {
			q.Set(k, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// RequestURL drops the query, which may carry secrets, and any user
// information from a request URL for traces.
func RequestURL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" {
		c.RawQuery = "…"
	}
	c.User = nil
	return c.String()
}

// ProxyURL hides a proxy URL's password, which may be a secret; a value that
// is not a URL with user information is returned as is.
func ProxyURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	return u.Redacted()
}

// Printable makes a peer's string safe to quote in a message for people:
// cut to max bytes (with "..." when cut), every control character (C0, DEL,
// C1) replaced by '?'.
func Printable(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
