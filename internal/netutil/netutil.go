// Package netutil holds the small network helpers that the CLI, the server
// and the development broker share: the loopback test, host names for
// messages, the proxy environment, and CA certificate files.
package netutil

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// IsLoopback reports whether host (a name or an IP address, without port or
// brackets) is "localhost" or a loopback address. Other names ending in
// ".localhost" are not: whether they resolve to this machine is up to the
// resolver.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// HostOf returns the host[:port] of raw for messages, or raw itself when it
// is not an absolute URL.
func HostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}

// OriginOf returns scheme://host[:port] of raw for messages, or raw itself
// when it is not an absolute URL.
func OriginOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Scheme + "://" + u.Host
	}
	return raw
}

// UnwrapURLError drops *url.Error's "Post <url>:" prefix, for messages that
// name the host already.
func UnwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
