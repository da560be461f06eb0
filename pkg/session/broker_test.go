package session

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// broker is a token and revocation endpoint that behaves like Keycloak with
// refresh token rotation: every refresh grant returns a new refresh token,
// and a refresh token works once.
type broker struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	grants    int             // refresh grants answered with tokens
	valid     map[string]bool // refresh tokens that still work
	revoked   []string        // tokens revoked, as "hint:token"
	clientIDs []string        // client_id of every request
	idToken   bool            // return an id_token on refresh
	refreshIn int             // refresh_expires_in; -1 leaves it out
	revokeErr int             // status the revocation endpoint answers; 0 = 200
	lifetime  int             // expires_in of new access tokens
	now       func() time.Time
}

func newBroker(t *testing.T, refreshTokens ...string) *broker {
	b := &broker{t: t, valid: map[string]bool{}, refreshIn: 1800, lifetime: 300, now: time.Now}
	for _, rt := range refreshTokens {
		b.valid[rt] = true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", b.token)
	mux.HandleFunc("POST /revoke", b.revoke)
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	return b
}

func (b *broker) token(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clientIDs = append(b.clientIDs, r.PostFormValue("client_id"))
	rt := r.PostFormValue("refresh_token")
	if r.PostFormValue("grant_type") != "refresh_token" || !b.valid[rt] {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Token is not active"}`)
		return
	}
	delete(b.valid, rt) // rotation: the old one is spent
	b.grants++
	next := fmt.Sprintf("refresh-%d", b.grants)
	b.valid[next] = true
	resp := map[string]any{
		"access_token":  jwt(map[string]any{"iat": b.now().Unix(), "n": b.grants}),
		"token_type":    "Bearer",
		"expires_in":    b.lifetime,
		"refresh_token": next,
	}
	if b.refreshIn >= 0 {
		resp["refresh_expires_in"] = b.refreshIn
	}
	if b.idToken {
		resp["id_token"] = fmt.Sprintf("id-%d", b.grants)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (b *broker) revoke(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.clientIDs = append(b.clientIDs, r.PostFormValue("client_id"))
	if b.revokeErr != 0 {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(b.revokeErr)
		_, _ = fmt.Fprint(w, `{"error":"server_error","error_description":"database down"}`)
		return
	}
	b.revoked = append(b.revoked, r.PostFormValue("token_type_hint")+":"+r.PostFormValue("token"))
}

func (b *broker) refreshGrants() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.grants
}

// jwt builds an unsigned JWT-shaped token carrying claims.
func jwt(claims map[string]any) string {
	enc := func(v any) string {
		j, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(j)
	}
	return enc(map[string]string{"alg": "none"}) + "." + enc(claims) + ".sig"
}
