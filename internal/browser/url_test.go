package browser

import (
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"https://sso.example.com/realms/pbench/protocol/openid-connect/auth?client_id=c&state=s", "https://sso.example.com/realms/pbench/protocol/openid-connect/auth?client_id=c&state=s"},
		{"http://127.0.0.1:8080/realms/x/device?user_code=AB-CD", "http://127.0.0.1:8080/realms/x/device?user_code=AB-CD"},
		{"http://localhost:5556/dex/auth", "http://localhost:5556/dex/auth"},
		{"http://[::1]:8080/auth", "http://[::1]:8080/auth"},
		{"https://sso.example.com/a b", "https://sso.example.com/a%20b"},
	} {
		got, err := CheckURL(tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("CheckURL(%q) = %q, %v; want %q", tc.raw, got, err, tc.want)
		}
	}
	for _, raw := range []string{
		"--gpu-launcher=/bin/sh -c id",
		"-new-window",
		"file:///etc/passwd",
		"javascript:alert(1)",
		"data:text/html,<script>x</script>",
		"x-scheme-handler://evil",
		"/relative/path",
		"//sso.example.com/auth",
		"https:opaque",
		"https://",
		"http://sso.example.com/auth",
		"http://10.0.0.1/auth",
		"https://user:pw@sso.example.com/auth",
		"https://sso.example.com/\x1b[31m",
		"https://sso.example.com/\nX",
		"",
	} {
		got, err := CheckURL(raw)
		if err == nil {
			t.Errorf("CheckURL(%q) = %q, want an error", raw, got)
			continue
		}
		if strings.ContainsAny(err.Error(), "\x1b\n") {
			t.Errorf("CheckURL(%q): the error carries control characters: %q", raw, err)
		}
	}
}

// FuzzCheckURL: whatever a broker sends, what CheckURL lets through is an
// absolute https (or loopback http) URL that no parser reads as an option.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://a/b", "-x", "http://127.0.0.1/", "file:///", "https://a/\x00", "javascript:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := CheckURL(raw)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "https://") && !strings.HasPrefix(got, "http://") {
			t.Fatalf("CheckURL(%q) = %q", raw, got)
		}
		for _, r := range got {
			if r <= ' ' || r == 0x7f {
				t.Fatalf("CheckURL(%q) = %q holds %q", raw, got, r)
			}
		}
	})
}
