package netutil

import (
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"

	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
)

// proxyVars are the variables net/http reads, upper case first.
var proxyVars = [...][2]string{{"HTTPS_PROXY", "https_proxy"}, {"HTTP_PROXY", "http_proxy"}, {"NO_PROXY", "no_proxy"}}

// ProxyConfig reads the proxy variables through getenv as net/http's
// ProxyFromEnvironment does (upper case first, CGI when REQUEST_METHOD is
// set), and names those that are set as NAME=VALUE with any password hidden.
func ProxyConfig(getenv func(string) string) (cfg *httpproxy.Config, set []string) {
	val := func(names [2]string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				set = append(set, n+"="+redact.ProxyURL(v))
				return v
			}
		}
		return ""
	}
	cfg = &httpproxy.Config{HTTPSProxy: val(proxyVars[0]), HTTPProxy: val(proxyVars[1]), NoProxy: val(proxyVars[2]),
		CGI: getenv("REQUEST_METHOD") != ""}
	return cfg, set
}

// ProxyFunc is http.ProxyFromEnvironment read through getenv (so that it can
// be tested, and is read when the client is built rather than once per
// process). Requests to localhost, *.localhost and loopback addresses never
// go through a proxy, whatever NO_PROXY says.
func ProxyFunc(getenv func(string) string) func(*http.Request) (*url.URL, error) {
	cfg, _ := ProxyConfig(getenv)
	pf := cfg.ProxyFunc()
	return func(req *http.Request) (*url.URL, error) {
		host := req.URL.Hostname()
		if IsLoopback(host) || strings.HasSuffix(strings.ToLower(host), ".localhost") {
			return nil, nil
		}
		return pf(req.URL)
	}
}
