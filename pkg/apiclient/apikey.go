package apiclient

import (
	"context"
	"errors"

	"github.com/distributed-system-analysis/pbench-auth/pkg/tokenstore"
)

// EnvAPIKey names the environment variable whose API key, when set, every
// command that calls the server sends instead of the profile's token (as gh
// does with GH_TOKEN): automation needs no login.
const EnvAPIKey = "PBENCH_API_KEY" // #nosec G101 -- the variable's name, not a credential

// APIKey is Sessions for an API key: its "token" never changes and cannot
// be refreshed, so a 401 is handed back as it is.
type APIKey string

// Token implements Sessions.
func (k APIKey) Token(context.Context, string) (*tokenstore.TokenSet, error) {
	return &tokenstore.TokenSet{AccessToken: string(k)}, nil
}

// ErrAPIKeyRefused: the server refused the API key, which cannot be refreshed.
var ErrAPIKeyRefused = errors.New("the server refused the API key in " + EnvAPIKey + ": it may have been deleted or have expired; create another with pbench-auth key create")

// Refresh implements Sessions: an API key cannot be refreshed.
func (k APIKey) Refresh(context.Context, string, string) (*tokenstore.TokenSet, error) {
	return nil, ErrAPIKeyRefused
}
