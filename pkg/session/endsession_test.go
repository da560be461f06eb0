package session

import (
	"errors"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

func TestEndSessionURL(t *testing.T) {
	tests := []struct {
		endpoint string
		want     string // "" means an error is wanted
		wantErr  error
	}{
		{"https://sso.example.com/realms/pbench/protocol/openid-connect/logout",
			"https://sso.example.com/realms/pbench/protocol/openid-connect/logout?client_id=pbench+client", nil},
		{"http://127.0.0.1:5556/dex/logout?ui=1", "http://127.0.0.1:5556/dex/logout?client_id=pbench+client&ui=1", nil},
		// A hint smuggled into the advertised endpoint is dropped, a
		// client_id there replaced.
		{"https://sso.example.com/logout?id_token_hint=eyJ&client_id=other", "https://sso.example.com/logout?client_id=pbench+client", nil},
		{"", "", ErrNoEndSession},
		{"javascript:alert(1)", "", nil},
		{"/logout", "", nil},
	}
	for _, tt := range tests {
		ts := &tokenstore.TokenSet{ClientID: "pbench client", EndSessionEndpoint: tt.endpoint, IDToken: "eyJ-id"}
		got, err := EndSessionURL(ts)
		switch {
		case tt.want != "" && (err != nil || got != tt.want):
			t.Errorf("EndSessionURL(%q) = %q, %v; want %q", tt.endpoint, got, err, tt.want)
		case tt.want == "" && err == nil:
			t.Errorf("EndSessionURL(%q) = %q; want an error", tt.endpoint, got)
		case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
			t.Errorf("EndSessionURL(%q) error %v; want %v", tt.endpoint, err, tt.wantErr)
		case strings.Contains(got, ts.IDToken):
			t.Errorf("EndSessionURL(%q) = %q carries the id token", tt.endpoint, got)
		}
	}
}
