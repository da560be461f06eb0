package server

import (
	"context"
	"errors"
	"net/http"
)

// APIKeys are long-lived credentials for automation (Pbench's API keys),
// sent like a token in "Authorization: Bearer KEY". Package server/apikey
// implements it on a database.
type APIKeys interface {
	// IsKey reports, without I/O, whether a Bearer credential is an API key
	// rather than a broker token.
	IsKey(credential string) bool
	// Authenticate returns the identity of the key's owner. Errors are
	// *TokenError (401: unknown, deleted or expired key) or wrap
	// ErrAPIKeysUnavailable (503).
	Authenticate(ctx context.Context, key string) (*Identity, error)
	// Handler serves /api/v1/key and /api/v1/key/{id}. The server puts it
	// behind Middleware: IdentityFrom gives the caller.
	Handler() http.Handler
}

// ErrAPIKeysUnavailable is wrapped by APIKeys errors when the key database
// cannot be reached; requests that need it are answered 503.
var ErrAPIKeysUnavailable = errors.New("the API key database cannot be reached: try again shortly")
