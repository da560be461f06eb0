package browser

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
)

// CheckURL returns the form of raw that may be given to a browser or a
// browser command, or an error saying why raw may not.
//
// raw comes from a peer (the broker's authorization or end-session
// endpoint, a device flow's verification URI): only an absolute https URL,
// or http on a loopback host, goes through. Other schemes (file:,
// javascript:, data:, a custom handler), relative or host-less URLs, URLs
// with credentials, and anything url.Parse refuses (control characters)
// are refused. The URL returned is re-encoded by net/url and starts with
// "https://" or "http://": an argument parser never reads it as an option
// (a value such as "--gpu-launcher=..." cannot reach argv), and it holds no
// space or control character.
func CheckURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("refusing to open %q in a browser: not a URL", shorten(raw))
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "http" && u.Host != "" && netutil.IsLoopback(u.Hostname()):
	case u.Scheme == "http" && u.Host != "":
		return "", fmt.Errorf("refusing to open %s in a browser: plain http to a host that is not loopback", hostOnly(u))
	default:
		return "", fmt.Errorf("refusing to open %q in a browser: only absolute https URLs (or http on loopback) are opened", shorten(raw))
	}
	if u.User != nil {
		return "", fmt.Errorf("refusing to open %s in a browser: the URL carries credentials", hostOnly(u))
	}
	if u.Opaque != "" {
		return "", fmt.Errorf("refusing to open %s in a browser: not a hierarchical URL", hostOnly(u))
	}
	s := u.String()
	if strings.ContainsAny(s, " \t\r\n") || strings.HasPrefix(s, "-") {
		return "", fmt.Errorf("refusing to open %s in a browser: unsafe characters", hostOnly(u))
	}
	return s, nil
}

func hostOnly(u *url.URL) string { return u.Scheme + "://" + u.Host }

// shorten keeps an error message short and printable.
func shorten(s string) string { return redact.Printable(s, 60) }
