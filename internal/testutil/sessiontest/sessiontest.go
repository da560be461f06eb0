// Package sessiontest provides a fake identity broker for tests of code
// that refreshes or revokes tokens: a token endpoint that rotates refresh
// tokens like Keycloak and Dex do, and an RFC 7009 revocation endpoint.
package sessiontest

import (
	"cmp"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// Broker is the fake broker. Every refresh grant returns a new access token
// and a new refresh token ("refresh-1", "refresh-2", ...), and spends the
// one it was given: using it again is answered invalid_grant. Configure the
// exported fields before the first request.
type Broker struct {
	URL    string
	Server *httptest.Server

	// ClientID is the only client_id the endpoints accept.
	ClientID string
	// Lifetime is the expires_in of new access tokens (default 5m).
	Lifetime time.Duration
	// RefreshExpiresIn is Keycloak's refresh_expires_in (default 30m);
	// negative leaves the field out.
	RefreshExpiresIn time.Duration
	// IDToken makes refresh responses carry an id_token ("id-1", ...).
	IDToken bool
	// TokenType is the token_type of refresh responses (default "Bearer").
	TokenType string
	// RevokeStatus is the revocation endpoint's answer; 0 means 200.
	RevokeStatus int
	// Now is the broker's clock for the access tokens' iat (default time.Now).
	Now func() time.Time

	mu      sync.Mutex
	grants  int
	valid   map[string]bool
	revoked []string
}

// NewBroker starts a broker that accepts refreshTokens (each once).
func NewBroker(t testing.TB, refreshTokens ...string) *Broker {
	return newBroker(t, func(s *httptest.Server) { s.Start() }, refreshTokens)
}

// NewTLSBroker is NewBroker serving https with cert (from a test CA: clients
// trust it only with that CA).
func NewTLSBroker(t testing.TB, cert tls.Certificate, refreshTokens ...string) *Broker {
	return newBroker(t, func(s *httptest.Server) {
		s.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes of clients without the CA
		s.StartTLS()
	}, refreshTokens)
}

func newBroker(t testing.TB, start func(*httptest.Server), refreshTokens []string) *Broker {
	b := &Broker{
		ClientID: "pbench-cli", Lifetime: 5 * time.Minute, RefreshExpiresIn: 30 * time.Minute,
		Now: time.Now, valid: map[string]bool{},
	}
	for _, rt := range refreshTokens {
		b.valid[rt] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", b.token)
	mux.HandleFunc("POST /revoke", b.revoke)
	b.Server = httptest.NewUnstartedServer(mux)
	start(b.Server)
	b.URL = b.Server.URL
	t.Cleanup(b.Server.Close)
	return b
}

// Grants is the number of successful refresh grants so far.
func (b *Broker) Grants() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.grants
}

// Revoked lists the revoked tokens as "<token_type_hint>:<token>".
func (b *Broker) Revoked() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.revoked...)
}

// Invalidate makes every refresh token unusable, as a broker-side logout does.
func (b *Broker) Invalidate() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.valid)
}

// TokenSet is a stored token set against b, for profile: its access token
// was issued lifetime before its expiry, which is now+remaining; its refresh
// token is rt and valid for an hour.
func (b *Broker) TokenSet(profile, rt string, now time.Time, lifetime, remaining time.Duration) *tokenstore.TokenSet {
	exp := now.Add(remaining)
	return &tokenstore.TokenSet{
		Server:             profile,
		Issuer:             b.URL,
		ClientID:           b.ClientID,
		TokenEndpoint:      b.URL + "/token",
		RevocationEndpoint: b.URL + "/revoke",
		AccessToken:        JWT(map[string]any{"iat": exp.Add(-lifetime).Unix(), "sub": "u-0"}),
		RefreshToken:       rt,
		IDToken:            "id-0",
		Expiry:             exp,
		RefreshExpiry:      now.Add(time.Hour),
	}
}

func (b *Broker) token(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rt := r.PostFormValue("refresh_token")
	if r.PostFormValue("grant_type") != "refresh_token" || r.PostFormValue("client_id") != b.ClientID || !b.valid[rt] {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Token is not active")
		return
	}
	delete(b.valid, rt)
	b.grants++
	next := fmt.Sprintf("refresh-%d", b.grants)
	b.valid[next] = true
	resp := map[string]any{
		"access_token":  JWT(map[string]any{"iat": b.Now().Unix(), "sub": fmt.Sprintf("u-%d", b.grants)}),
		"token_type":    cmp.Or(b.TokenType, "Bearer"),
		"expires_in":    int(b.Lifetime.Seconds()),
		"refresh_token": next,
	}
	if b.RefreshExpiresIn >= 0 {
		resp["refresh_expires_in"] = int(b.RefreshExpiresIn.Seconds())
	}
	if b.IDToken {
		resp["id_token"] = fmt.Sprintf("id-%d", b.grants)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (b *Broker) revoke(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.RevokeStatus != 0 {
		oauthError(w, b.RevokeStatus, "server_error", "database down")
		return
	}
	if r.PostFormValue("client_id") != b.ClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client")
		return
	}
	b.revoked = append(b.revoked, r.PostFormValue("token_type_hint")+":"+r.PostFormValue("token"))
	delete(b.valid, r.PostFormValue("token"))
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// JWT builds an unsigned JWT-shaped token carrying claims. Nothing verifies
// it: it exists so that code reading claims (iat, roles) has some to read.
func JWT(claims map[string]any) string {
	enc := func(v any) string {
		j, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + ".unsigned"
}
