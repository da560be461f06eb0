package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/distributed-system-analysis/pbench-auth/pkg/discovery"
)

// ErrNonceMismatch is returned when the id_token was not issued for this
// login's request (a replayed or injected token).
var ErrNonceMismatch = errors.New("the id_token's nonce does not match this login's request (a replayed or injected token?); log in again")

// verifyIDToken checks the token response's id_token with go-oidc against the
// broker's JWKS (signature, iss, aud = client id, exp), then the nonce when
// one was sent, and at_hash when present; it returns the user it names.
func verifyIDToken(ctx context.Context, b *discovery.Broker, tok *oauth2.Token, nonce string, now func() time.Time) (Identity, error) {
	raw := idTokenOf(tok)
	if raw == "" {
		return Identity{}, errors.New(`the broker returned no id_token; it must allow the "openid" scope for this client`)
	}
	idt, err := b.Provider.Verifier(&oidc.Config{ClientID: b.ClientID, Now: now}).Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("id_token: %w", err)
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Identity{}, ErrNonceMismatch
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, fmt.Errorf("id_token at_hash: %w", err)
		}
	}
	var id Identity
	if err := idt.Claims(&id); err != nil {
		return Identity{}, fmt.Errorf("id_token claims: %w", err)
	}
	return id, nil
}
