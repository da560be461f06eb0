package devbroker

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/rs/cors"
)

// CORS, as Keycloak answers it: the realm's public documents (discovery,
// keys, realm info) to any origin; the token, userinfo, logout and
// revocation endpoints only to the web origins of the client the request is
// for. The op library's own policy (every origin, with credentials) is
// switched off (see newLegacyServer).

func publicCORS() *cors.Cors {
	return cors.New(cors.Options{
		AllowedOrigins: []string{"*"},
		AllowedMethods: []string{http.MethodGet, http.MethodHead},
	})
}

// clientCORS wraps h with the client endpoints' policy. The request's form
// is read first (bounded), so the policy can see its client_id.
func (b *Broker) clientCORS(h http.Handler) http.Handler {
	c := cors.New(cors.Options{
		AllowOriginVaryRequestFunc: b.corsAllowed,
		AllowCredentials:           true, // keycloak-js sends its requests with credentials
		AllowedMethods:             []string{http.MethodGet, http.MethodPost},
		AllowedHeaders:             []string{"Authorization", "Content-Type", "Accept", "X-Requested-With"},
		MaxAge:                     3600,
	})
	inner := c.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !parseForm(w, r) {
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// corsAllowed lets origin read the answer when it is a web origin of the
// client the request names: its client_id (form or basic auth) or, for
// userinfo, the azp of its bearer token. A preflight names no client: it is
// answered for the origins of every client, as Keycloak does; the real
// request is then checked.
func (b *Broker) corsAllowed(r *http.Request, origin string) (bool, []string) {
	cfg := b.store.client
	if r.Method == http.MethodOptions {
		return cfg.allowsOrigin(origin), nil
	}
	return b.requestClient(r) == b.clientID && cfg.allowsOrigin(origin), nil
}

// requestClient is the client a request at a client endpoint is for; ""
// when it names none.
func (b *Broker) requestClient(r *http.Request) string {
	if id := r.PostForm.Get("client_id"); id != "" {
		return id
	}
	if id, _, ok := r.BasicAuth(); ok {
		return id
	}
	if id := r.URL.Query().Get("client_id"); id != "" {
		return id
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return b.authorizedParty(strings.TrimSpace(tok))
	}
	return ""
}

// authorizedParty is the azp of an access token this broker signed; "" if
// the token is not one.
func (b *Broker) authorizedParty(token string) string {
	if len(token) > 16<<10 {
		return ""
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return ""
	}
	payload, err := jws.Verify(&b.key.private.PublicKey)
	if err != nil {
		return ""
	}
	var c struct {
		AZP string `json:"azp"`
	}
	if json.Unmarshal(payload, &c) != nil {
		return ""
	}
	return c.AZP
}
