package redact_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/redact"
)

func TestSecret(t *testing.T) {
	if got := redact.Secret(""); got != "(none)" {
		t.Errorf("Secret(\"\") = %q, want (none)", got)
	}
	if got := redact.Secret("s3cret-value"); got != "[redacted 12 bytes]" {
		t.Errorf("Secret = %q, want [redacted 12 bytes]", got)
	}
}

func TestRequestURL(t *testing.T) {
	u, _ := url.Parse("https://user:pw@api.example.com/x?access_token=S3CRET")
	got := redact.RequestURL(u)
	if strings.Contains(got, "S3CRET") || strings.Contains(got, "pw") || got != "https://api.example.com/x?…" {
		t.Errorf("RequestURL = %q", got)
	}
	if u.RawQuery == "" || u.User == nil {
		t.Error("RequestURL changed its argument")
	}
}

func TestProxyURL(t *testing.T) {
	if got := redact.ProxyURL("http://u:S3CRET@proxy:3128"); strings.Contains(got, "S3CRET") || !strings.Contains(got, "proxy:3128") {
		t.Errorf("ProxyURL = %q", got)
	}
	if got := redact.ProxyURL("proxy:3128"); got != "proxy:3128" {
		t.Errorf("ProxyURL(no user) = %q, want it unchanged", got)
	}
}

func TestAuthURL(t *testing.T) {
	got := redact.AuthURL("https://b/auth?client_id=c&state=S3CRET1&nonce=S3CRET2&code_challenge=S3CRET3&scope=openid")
	if strings.Contains(got, "S3CRET") || !strings.Contains(got, "client_id=c") || !strings.Contains(got, "state=REDACTED") {
		t.Errorf("AuthURL = %q", got)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain":               "plain",
		"\x1b[31mred\x07":     "?[31mred?",
		"c1\u009bx\x7f":       "c1?x?",
		"0123456789abcdefXYZ": "0123456789...",
	} {
		if got := redact.Printable(in, 10); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
