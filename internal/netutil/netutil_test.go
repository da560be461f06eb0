package netutil_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/netutil"
)

func TestProxyFromEnvironment(t *testing.T) {
	env := map[string]string{
		"HTTPS_PROXY": "http://proxy.corp:3128",
		"http_proxy":  "http://plain-proxy.corp:3128",
		"NO_PROXY":    "internal.corp",
	}
	pf := netutil.ProxyFunc(func(k string) string { return env[k] })
	for target, want := range map[string]string{
		"https://pbench.example.com/api/v1/endpoints": "http://proxy.corp:3128",
		"http://pbench.example.com/":                  "http://plain-proxy.corp:3128",
		"https://sso.internal.corp/realms/x":          "",
		"http://127.0.0.1:38111/callback":             "",
		"http://localhost:38111/callback":             "",
		"http://[::1]:38111/callback":                 "",
	} {
		u, _ := url.Parse(target)
		got, err := pf(&http.Request{URL: u})
		if err != nil {
			t.Fatal(err)
		}
		if (got == nil) != (want == "") || (got != nil && got.String() != want) {
			t.Errorf("proxy for %s = %v, want %q", target, got, want)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true,
		"sso.localhost": false, "localhost.example.com": false, "10.0.0.1": false, "": false, "::": false,
	} {
		if got := netutil.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestHostAndOrigin(t *testing.T) {
	for _, tt := range []struct{ raw, host, origin string }{
		{"https://sso.example.com:8443/realms/x?y", "sso.example.com:8443", "https://sso.example.com:8443"},
		{"http://[::1]:9/cb", "[::1]:9", "http://[::1]:9"},
		{"not a url", "not a url", "not a url"},
	} {
		if got := netutil.HostOf(tt.raw); got != tt.host {
			t.Errorf("HostOf(%q) = %q, want %q", tt.raw, got, tt.host)
		}
		if got := netutil.OriginOf(tt.raw); got != tt.origin {
			t.Errorf("OriginOf(%q) = %q, want %q", tt.raw, got, tt.origin)
		}
	}
}
