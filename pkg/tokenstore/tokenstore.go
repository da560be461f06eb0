// Package tokenstore keeps a profile's tokens between runs: in the OS keyring
// (Secret Service, macOS Keychain, Windows Credential Manager) or, when asked
// for explicitly or warned about, in a 0600 file.
package tokenstore

import (
	"errors"
	"time"
)

// TokenSet is everything the CLI keeps for one profile. Tokens are secrets:
// never log or print a TokenSet.
type TokenSet struct {
	// Server is the profile's normalised Pbench server URL ("" when the
	// user logged in against a broker directly with --issuer).
	Server string `json:"server,omitempty"`
	// Issuer, ClientID and the endpoints are what a refresh or a logout
	// needs without asking the server or the broker's discovery again.
	Issuer             string `json:"issuer"`
	ClientID           string `json:"client_id"`
	TokenEndpoint      string `json:"token_endpoint"`
	RevocationEndpoint string `json:"revocation_endpoint,omitempty"`
	EndSessionEndpoint string `json:"end_session_endpoint,omitempty"`
	Scope              string `json:"scope,omitempty"`

	TokenType    string    `json:"token_type,omitempty"`
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	Expiry       time.Time `json:"expiry"`
	// RefreshExpiry is when the refresh token stops working, from Keycloak's
	// refresh_expires_in; zero when the broker did not say (or 0 = offline).
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`
}

// ErrNotFound is returned by Load when the profile has no stored tokens.
var ErrNotFound = errors.New("no tokens stored")

// Store persists token sets by profile name (the normalised server URL, or
// the issuer for a direct login).
type Store interface {
	Load(profile string) (*TokenSet, error)
	Save(profile string, ts *TokenSet) error
	// Delete removes a profile's tokens; deleting a missing profile is not an error.
	Delete(profile string) error
	// List names every profile that has tokens.
	List() ([]string, error)
	// Kind is "keyring" or "file".
	Kind() string
	// Location says where a profile's tokens are, for people: a file path,
	// or "keyring service pbench-auth".
	Location(profile string) string
}
