package peerurl

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, ok := range []string{
		"https://sso.example.com",
		"https://sso.example.com/realms/pbench",
		"http://127.0.0.1:8080/realms/pbench-server",
		"HTTPS://SSO.example.com/x?y=1",
		"http://[::1]:9/a",
	} {
		u, err := Check(`"openid.server"`, "the Pbench server at https://p.example.com", ok)
		if err != nil || u == nil || u.Hostname() == "" {
			t.Errorf("Check(%q) = %v, %v; want it accepted", ok, u, err)
		}
	}
	for _, bad := range []string{
		"", "/", "/realms/0", "sso.example.com", "//sso.example.com/realms/x", "https://", "https://:443/x",
		"https:sso.example.com", "ftp://sso.example.com", "javascript:alert(1)", "file:///etc/passwd",
		"data:text/html,x", "https://sso example.com", "http://%zz/", "0",
	} {
		_, err := Check(`"token_endpoint"`, "the identity broker at https://sso.example.com", bad)
		if !errors.Is(err, ErrNotAbsolute) {
			t.Errorf("Check(%q) = %v, want ErrNotAbsolute", bad, err)
			continue
		}
		for _, want := range []string{`"token_endpoint"`, "the identity broker at https://sso.example.com"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Check(%q): %q does not name %s", bad, err, want)
			}
		}
	}
}

func TestCheckTruncatesHugeValues(t *testing.T) {
	_, err := Check("f", "s", "/"+strings.Repeat("a", 100000))
	if err == nil || len(err.Error()) > 1000 {
		t.Fatalf("error of %d bytes, want it bounded: %.300v", len(err.Error()), err)
	}
}
