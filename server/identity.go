package server

import (
	"context"
	"slices"
)

// Identity is who a valid access token speaks for. Values handed out by the
// server are shared between requests (they live in the verified-token
// cache): treat them as read-only.
type Identity struct {
	// Subject is the token's "sub" (Keycloak: the user's UUID).
	Subject string `json:"sub"`
	// Username is "preferred_username", or Subject when there is none.
	Username string `json:"username"`
	// Email is "email", possibly empty.
	Email string `json:"email"`
	// Roles are realm_access.roles together with resource_access.<c>.roles
	// for the client id and each configured audience c; sorted, without
	// duplicates, never nil.
	Roles []string `json:"roles"`
	// APIKeyID is the id of the API key the request authenticated with
	// (the identity is then the key owner's, roles as at the key's
	// creation); 0 for a broker token.
	APIKeyID int64 `json:"-"`
}

// HasRole reports whether the identity has role.
func (id *Identity) HasRole(role string) bool {
	_, found := slices.BinarySearch(id.Roles, role)
	return found
}

type identityKey struct{}

// IdentityFrom returns the identity that the middleware put in ctx.
func IdentityFrom(ctx context.Context) (*Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	return id, ok && id != nil
}

// WithIdentity returns a copy of ctx carrying id, as the middleware does.
// Tests of handlers behind the middleware use it.
func WithIdentity(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}
