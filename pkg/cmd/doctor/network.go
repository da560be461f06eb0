package doctor

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/net/http/httpproxy"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
)

// validProxy is true when net/http can use v as a proxy: a URL, or a
// host[:port] taken as http://host[:port].
func validProxy(v string) bool {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" && u.Scheme != "socks5h") {
		u, err = url.Parse("http://" + v)
	}
	return err == nil && u.Host != ""
}

// route says how a request to target leaves this machine: "direct" or
// "through proxy HOST". An invalid proxy variable is an error.
func route(cfg *httpproxy.Config, target string) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", err
	}
	p, err := cfg.ProxyFunc()(u)
	if err != nil {
		return "", err
	}
	if p == nil {
		return "direct", nil
	}
	return "through proxy " + p.Host, nil
}

// checkProxy names the proxy variables in use and how each of urls (the
// server, then the broker) is reached.
func checkProxy(getenv func(string) string, urls ...string) Result {
	cfg, set := netutil.ProxyConfig(getenv)
	if len(set) == 0 {
		return Result{Name: "proxy", Status: StatusOK, Message: "no proxy variables set: connections go direct"}
	}
	for _, v := range []string{cfg.HTTPSProxy, cfg.HTTPProxy} {
		if v != "" && !validProxy(v) {
			return Result{Name: "proxy", Status: StatusWarn,
				Message: fmt.Sprintf("%s: %q is not a proxy URL, so Go ignores it and connects directly", strings.Join(set, ", "), redact.ProxyURL(v)),
				Fix:     "set the variable to a URL such as http://proxy.example.com:3128, or unset it"}
		}
	}
	var routes []string
	for i, target := range urls {
		if target == "" {
			continue
		}
		r, err := route(cfg, target)
		if err != nil {
			return Result{Name: "proxy", Status: StatusFail, Message: fmt.Sprintf("%s: %v", strings.Join(set, ", "), err),
				Fix: "fix the proxy variable (a URL such as http://proxy.example.com:3128) or unset it"}
		}
		what := "server"
		if i > 0 {
			what = "broker"
		}
		routes = append(routes, what+" "+r)
	}
	msg := strings.Join(set, ", ")
	if len(routes) > 0 {
		msg += ": " + strings.Join(routes, ", ")
	}
	return Result{Name: "proxy", Status: StatusOK, Message: msg}
}

// proxyHint is a sentence to add to a fix when target is reached through a
// proxy.
func proxyHint(getenv func(string) string, target string) string {
	cfg, _ := netutil.ProxyConfig(getenv)
	r, err := route(cfg, target)
	if err != nil || r == "direct" {
		return ""
	}
	return "; requests to it go " + r + ": check the proxy, or add the host to NO_PROXY"
}

// withCLICAs adds to the ca check what the CLI trusts on top of the system's
// CAs (--ca-cert, $PBENCH_AUTH_CA_CERT, the profile's ca-cert) or that
// --insecure-skip-tls-verify turns verification off. trust nil: r as is.
func withCLICAs(r Result, trust func() (cmdutil.CATrust, error)) Result {
	if trust == nil || r.Status == StatusFail {
		return r
	}
	tr, err := trust()
	switch {
	case err != nil:
		return Result{Name: "ca", Status: StatusFail, Message: err.Error(),
			Fix: "give --ca-cert (or $PBENCH_AUTH_CA_CERT, or the profile's ca-cert) PEM files of CA certificates"}
	case tr.Insecure:
		return Result{Name: "ca", Status: StatusWarn, Message: "trusted: " + tr.Summary,
			Fix: "drop --insecure-skip-tls-verify and pass the server's CA with --ca-cert FILE"}
	}
	r.Message += "; trusted: " + tr.Summary
	return r
}

// checkCA reports SSL_CERT_FILE and SSL_CERT_DIR, which replace (not add to)
// the system's CA certificates that Go trusts on Linux and the BSDs.
func checkCA(getenv func(string) string) Result {
	file, dir := getenv("SSL_CERT_FILE"), getenv("SSL_CERT_DIR")
	if file == "" && dir == "" {
		return Result{Name: "ca", Status: StatusOK, Message: "the system's CA certificates (SSL_CERT_FILE and SSL_CERT_DIR are not set)"}
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "windows" {
		return Result{Name: "ca", Status: StatusWarn,
			Message: "SSL_CERT_FILE / SSL_CERT_DIR are set, but on " + runtime.GOOS + " Go verifies certificates with the system and ignores them",
			Fix:     "add the CA to the system's trust store instead"}
	}
	var parts []string
	if file != "" {
		n, err := countCerts(file)
		if err != nil {
			return Result{Name: "ca", Status: StatusFail, Message: fmt.Sprintf("SSL_CERT_FILE=%s: %v; Go then trusts no CA from a file, so TLS connections fail", file, err),
				Fix: "point SSL_CERT_FILE at a PEM file of CA certificates, or unset it"}
		}
		parts = append(parts, fmt.Sprintf("SSL_CERT_FILE=%s (%d certificates, used instead of the system's file)", file, n))
	}
	if dir != "" {
		for _, d := range filepath.SplitList(dir) {
			if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
				return Result{Name: "ca", Status: StatusFail, Message: fmt.Sprintf("SSL_CERT_DIR names %s, which is not a directory", d),
					Fix: "point SSL_CERT_DIR at directories of CA certificates, or unset it"}
			}
		}
		parts = append(parts, fmt.Sprintf("SSL_CERT_DIR=%s (used instead of the system's directories)", dir))
	}
	return Result{Name: "ca", Status: StatusOK, Message: strings.Join(parts, ", ")}
}

// countCerts counts the certificates in file, which must all parse.
func countCerts(file string) (int, error) {
	certs, err := netutil.ReadCertificates(file)
	if errors.Is(err, netutil.ErrNoCertificates) {
		return 0, fmt.Errorf("no PEM certificate in %s", file)
	}
	return len(certs), err
}
