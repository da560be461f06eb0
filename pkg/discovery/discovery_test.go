package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestFetchEndpoints(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		ctype       string
		body        string
		wantIssuer  string
		wantClient  string
		wantErr     string // substring of the error
		wantKind    error  // the kind (errors.Is) of the error: nil for exit code 1
		wantDefault bool
	}{
		{
			name:       "keycloak server and realm",
			body:       `{"identification":"Pbench server 1.0","api":{"x":"y"},"openid":{"server":"https://kc.example.com/","realm":"pbench-server","client":"pbench-client"}}`,
			wantIssuer: "https://kc.example.com/realms/pbench-server",
			wantClient: "pbench-client",
		},
		{
			name:       "issuer wins over server and realm",
			body:       `{"openid":{"server":"https://kc.example.com","realm":"r","client":"c","issuer":"https://dex.example.com/dex"}}`,
			wantIssuer: "https://dex.example.com/dex",
			wantClient: "c",
		},
		{name: "not found", status: 404, body: "nope", wantErr: "answered 404 Not Found", wantKind: nil},
		{name: "server error", status: 503, body: "down", wantErr: "not available", wantKind: ErrUnreachable},
		{name: "html page", ctype: "text/html", body: "<html>hello</html>", wantErr: `answered "text/html", not JSON`, wantKind: nil},
		{name: "malformed json", body: `{"openid":`, wantErr: "malformed JSON", wantKind: nil},
		{name: "no openid section", body: `{"identification":"Pbench server 0.69"}`, wantErr: `no "openid" section`, wantKind: nil},
		{name: "no client", body: `{"openid":{"issuer":"https://i"}}`, wantErr: `lacks "client"`, wantKind: nil},
		{name: "no realm", body: `{"openid":{"server":"https://kc","client":"c"}}`, wantErr: `lacks "issuer" (or "server" and "realm")`, wantKind: nil},
		{name: "too large", body: `{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, wantErr: "larger than", wantKind: nil},
		// A relative or schemeless URL would give an issuer of no host ("/" + "/realms/0").
		{name: "relative server", body: `{"openid":{"server":"/","realm":"0","client":"0"}}`,
			wantErr: `sent "openid.server" "/": not an absolute http(s) URL with a host`, wantKind: nil},
		{name: "schemeless server", body: `{"openid":{"server":"sso.example.com","realm":"r","client":"c"}}`,
			wantErr: `"openid.server" "sso.example.com": not an absolute`, wantKind: nil},
		{name: "relative issuer", body: `{"openid":{"issuer":"/realms/x","client":"c"}}`,
			wantErr: `"openid.issuer" "/realms/x": not an absolute`, wantKind: nil},
		{name: "javascript issuer", body: `{"openid":{"issuer":"javascript:alert(1)","client":"c"}}`,
			wantErr: `"openid.issuer" "javascript:alert(1)": not an absolute`, wantKind: nil},
		{name: "bad server beside a good issuer", body: `{"openid":{"server":"//kc","realm":"r","issuer":"https://dex.example.com","client":"c"}}`,
			wantErr: `"openid.server" "//kc": not an absolute`, wantKind: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != EndpointsPath {
					http.NotFound(w, r)
					return
				}
				ct := tt.ctype
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				_, _ = w.Write([]byte(tt.body))
			})
			ep, err := FetchEndpoints(context.Background(), srv.Client(), srv.URL+"/")
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got %+v, want an error containing %q", ep, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				if strings.Contains(tt.wantErr, "not an absolute") && !strings.Contains(err.Error(), "the Pbench server at "+srv.URL+"/") {
					t.Errorf("error %q does not name the server that sent the URL", err)
				}
				for _, kind := range []error{ErrUnreachable, ErrInvalidInput} {
					if got, want := errors.Is(err, kind), tt.wantKind != nil && errors.Is(tt.wantKind, kind); got != want {
						t.Errorf("errors.Is(%q, %v) = %v, want kind %v", err, kind, got, tt.wantKind)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ep.OpenID.IssuerURL(); got != tt.wantIssuer {
				t.Errorf("issuer %q, want %q", got, tt.wantIssuer)
			}
			if ep.OpenID.Client != tt.wantClient {
				t.Errorf("client %q, want %q", ep.OpenID.Client, tt.wantClient)
			}
		})
	}
}

func TestFetchEndpointsUnreachable(t *testing.T) {
	_, err := FetchEndpoints(context.Background(), http.DefaultClient, "http://"+testutil.ReserveAddr(t))
	if err == nil {
		t.Fatal("want an error for a closed port")
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("error %v is not ErrUnreachable (exit code 5)", err)
	}
	if !strings.Contains(err.Error(), "cannot reach the Pbench server") {
		t.Errorf("error %q does not say the server is unreachable", err)
	}
}

// keycloakDiscovery is the shape of Keycloak's discovery document (trimmed).
func keycloakDiscovery(issuer string, pkce []string) map[string]any {
	base := issuer + "/protocol/openid-connect"
	return map[string]any{
		"issuer":                                issuer,
		"authorization_endpoint":                base + "/auth",
		"token_endpoint":                        base + "/token",
		"userinfo_endpoint":                     base + "/userinfo",
		"end_session_endpoint":                  base + "/logout",
		"jwks_uri":                              base + "/certs",
		"introspection_endpoint":                base + "/token/introspect",
		"revocation_endpoint":                   base + "/revoke",
		"device_authorization_endpoint":         base + "/auth/device",
		"code_challenge_methods_supported":      pkce,
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
	}
}

func TestDiscover(t *testing.T) {
	var issuer string
	var doc map[string]any
	status := http.StatusOK
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/realms/pbench/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(doc)
	})
	issuer = srv.URL + "/realms/pbench"
	ctx := context.Background()

	t.Run("keycloak fields", func(t *testing.T) {
		doc = keycloakDiscovery(issuer, []string{"plain", "S256"})
		b, err := Discover(ctx, srv.Client(), issuer, "pbench-client")
		if err != nil {
			t.Fatal(err)
		}
		want := Metadata{
			AuthorizationEndpoint:         issuer + "/protocol/openid-connect/auth",
			TokenEndpoint:                 issuer + "/protocol/openid-connect/token",
			UserinfoEndpoint:              issuer + "/protocol/openid-connect/userinfo",
			DeviceAuthorizationEndpoint:   issuer + "/protocol/openid-connect/auth/device",
			RevocationEndpoint:            issuer + "/protocol/openid-connect/revoke",
			EndSessionEndpoint:            issuer + "/protocol/openid-connect/logout",
			IntrospectionEndpoint:         issuer + "/protocol/openid-connect/token/introspect",
			JWKSURI:                       issuer + "/protocol/openid-connect/certs",
			CodeChallengeMethodsSupported: []string{"plain", "S256"},
		}
		gotJSON, _ := json.Marshal(b.Metadata)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("metadata\n got %s\nwant %s", gotJSON, wantJSON)
		}
		if b.Issuer != issuer || b.ClientID != "pbench-client" {
			t.Errorf("issuer %q client %q", b.Issuer, b.ClientID)
		}
		if !b.SupportsPKCES256() {
			t.Error("S256 is listed, SupportsPKCES256 = false")
		}
		if got := b.Provider.Endpoint().DeviceAuthURL; got != want.DeviceAuthorizationEndpoint {
			t.Errorf("provider device endpoint %q", got)
		}
	})

	pkceCases := []struct {
		methods []string
		want    bool
	}{{nil, true}, {[]string{"plain"}, false}, {[]string{"S256"}, true}}
	for _, c := range pkceCases {
		doc = keycloakDiscovery(issuer, c.methods)
		b, err := Discover(ctx, srv.Client(), issuer, "c")
		if err != nil {
			t.Fatal(err)
		}
		if got := b.SupportsPKCES256(); got != c.want {
			t.Errorf("methods %v: SupportsPKCES256 = %v, want %v", c.methods, got, c.want)
		}
	}

	t.Run("issuer mismatch", func(t *testing.T) {
		doc = keycloakDiscovery(issuer, nil)
		_, err := Discover(ctx, srv.Client(), issuer+"/", "c")
		if err == nil || !strings.Contains(err.Error(), "issuer mismatch") ||
			!strings.Contains(err.Error(), `names issuer "`+issuer+`", not "`+issuer+`/"`) {
			t.Fatalf("got %v, want an issuer mismatch naming both issuers", err)
		}
		var mismatch *IssuerMismatchError
		if !errors.As(err, &mismatch) || mismatch.Expected != issuer+"/" || mismatch.Discovered != issuer {
			t.Errorf("error %#v is not an IssuerMismatchError with both issuers", err)
		}
	})

	t.Run("no discovery document", func(t *testing.T) {
		_, err := Discover(ctx, srv.Client(), srv.URL+"/realms/other", "c")
		if err == nil || !strings.Contains(err.Error(), "answered 404 Not Found") {
			t.Fatalf("got %v, want a 404 explained", err)
		}
		if strings.Contains(err.Error(), "page not found") {
			t.Errorf("error %q carries the response body", err)
		}
	})

	t.Run("broker unavailable", func(t *testing.T) {
		doc, status = keycloakDiscovery(issuer, nil), http.StatusBadGateway
		defer func() { status = http.StatusOK }()
		_, err := Discover(ctx, srv.Client(), issuer, "c")
		if !errors.Is(err, ErrUnreachable) {
			t.Fatalf("got %v, want ErrUnreachable (exit 5)", err)
		}
	})

	t.Run("too large", func(t *testing.T) {
		doc = keycloakDiscovery(issuer, nil)
		doc["padding"] = strings.Repeat("x", MaxBodyBytes)
		_, err := Discover(ctx, srv.Client(), issuer, "c")
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("got %v, want a body-size error", err)
		}
	})

	for field, bad := range map[string]string{
		"authorization_endpoint":        "/protocol/openid-connect/auth",
		"token_endpoint":                "token",
		"end_session_endpoint":          "javascript:alert(1)",
		"revocation_endpoint":           "//revoke.example.com/x",
		"jwks_uri":                      "file:///etc/passwd",
		"device_authorization_endpoint": "https://",
	} {
		t.Run("relative "+field, func(t *testing.T) {
			doc = keycloakDiscovery(issuer, nil)
			doc[field] = bad
			b, err := Discover(ctx, srv.Client(), issuer, "c")
			want := "the identity broker's discovery document " + issuer + "/.well-known/openid-configuration sent \"" + field + "\""
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "not an absolute http(s) URL") {
				t.Fatalf("got %v, %v; want an error containing %q", b, err, want)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		_, err := Discover(ctx, http.DefaultClient, "http://"+testutil.ReserveAddr(t)+"/realms/x", "c")
		if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach the identity broker") {
			t.Fatalf("got %v, want ErrUnreachable (exit 5) saying it cannot reach the broker", err)
		}
	})
}
