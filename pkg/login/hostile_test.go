package login_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
	"github.com/distributed-system-analysis/pbench-auth/pkg/login"
	"github.com/distributed-system-analysis/pbench-auth/pkg/session"
)

// hostileURLs are what a hostile or broken broker could hand the CLI to
// open: an option for the browser, local files, scripts, plain http.
var hostileURLs = []string{
	"--gpu-launcher=/bin/sh -c id",
	"-incognito",
	"file:///etc/passwd",
	"javascript:alert(document.cookie)",
	"data:text/html,<script>alert(1)</script>",
	"http://evil.example.com/auth",
	"https://user:pw@sso.example.com/auth",
}

// hostileBroker is a broker whose authorization endpoint is authURL and
// whose device endpoint answers with the verification URIs given.
func hostileBroker(t *testing.T, authURL, verify, complete string) *discovery.Broker {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/token" {
			_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "DPoP", "expires_in": 300, "id_token": "x.y.z"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"device_code": "dc", "user_code": "ABCD-EFGH", "verification_uri": verify,
			"verification_uri_complete": complete, "expires_in": 60, "interval": 1,
		})
	}))
	t.Cleanup(srv.Close)
	p := (&oidc.ProviderConfig{
		IssuerURL: srv.URL, AuthURL: authURL, TokenURL: srv.URL + "/token", DeviceAuthURL: srv.URL + "/device",
	}).NewProvider(context.Background())
	return &discovery.Broker{Issuer: srv.URL, ClientID: "pbench-client", Provider: p,
		Metadata: discovery.Metadata{AuthorizationEndpoint: authURL, TokenEndpoint: srv.URL + "/token", DeviceAuthorizationEndpoint: srv.URL + "/device"}}
}

func TestHostileAuthorizationEndpointNeverReachesTheBrowser(t *testing.T) {
	for _, bad := range hostileURLs {
		var opened atomic.Bool
		prompt := &syncBuffer{}
		_, err := login.Login(context.Background(), login.Options{
			Broker:  hostileBroker(t, bad, "", ""),
			Browser: func(string) error { opened.Store(true); return nil },
			Prompt:  prompt,
		})
		if err == nil || !strings.Contains(err.Error(), "authorization_endpoint") {
			t.Errorf("%q: login error %v, want a refusal naming authorization_endpoint", bad, err)
		}
		if opened.Load() {
			t.Errorf("%q reached the browser", bad)
		}
		if strings.Contains(prompt.String(), "open "+bad) || strings.Contains(prompt.String(), "    "+bad) {
			t.Errorf("%q was offered to the user: %q", bad, prompt)
		}
	}
}

func TestHostileVerificationURIsNeverReachTheBrowser(t *testing.T) {
	good := "https://sso.example.com/realms/pbench/device"
	for _, bad := range hostileURLs {
		// A hostile verification_uri ends the login.
		var opened atomic.Bool
		_, err := login.Login(context.Background(), login.Options{
			Broker: hostileBroker(t, good, bad, ""), Device: true,
			Browser: func(string) error { opened.Store(true); return nil },
		})
		if err == nil || !strings.Contains(err.Error(), "verification_uri") || opened.Load() {
			t.Errorf("verification_uri %q: error %v, browser opened %v", bad, err, opened.Load())
		}

		// A hostile verification_uri_complete is ignored: the plain one opens.
		ctx, cancel := context.WithCancel(context.Background())
		var got string
		prompt := &syncBuffer{}
		_, _ = login.Login(ctx, login.Options{
			Broker: hostileBroker(t, good, good, bad), Device: true, Prompt: prompt,
			Browser: func(u string) error { got = u; cancel(); return nil },
		})
		cancel()
		if got != good {
			t.Errorf("verification_uri_complete %q: the browser got %q, want %q", bad, got, good)
		}
		if strings.Contains(prompt.String(), "open "+bad) {
			t.Errorf("verification_uri_complete %q was offered to the user: %q", bad, prompt)
		}
	}
}

// A token answer whose token_type is not Bearer is refused at login.
func TestLoginRefusesOtherTokenTypes(t *testing.T) {
	good := "https://sso.example.com/realms/pbench/device"
	_, err := login.Login(context.Background(), login.Options{Broker: hostileBroker(t, good, good, ""), Device: true})
	if !errors.Is(err, session.ErrTokenType) || !strings.Contains(err.Error(), "nothing was stored") {
		t.Errorf("login with a DPoP token: %v", err)
	}
}
