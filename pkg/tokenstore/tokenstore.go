// Package tokenstore keeps a profile's tokens between runs: in the OS keyring
// (Secret Service, macOS Keychain, Windows Credential Manager) or, when asked
// for explicitly or warned about, in a 0600 file.
package tokenstore

import (
	"errors"
	"fmt"
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

// Errors of stored tokens that exist but cannot be used (errors.Is). Their
// messages say which file or entry, what is wrong and what to do.
var (
	// ErrCorrupt: the stored value is damaged (truncated, garbage, torn).
	// It holds nothing usable: Delete removes it.
	ErrCorrupt = errors.New("stored tokens are damaged")
	// ErrUnsafe: the file store refused a file or directory it does not
	// trust: a symbolic link, something other than a regular file, one
	// owned by another user, or a token file that others may read.
	ErrUnsafe = errors.New("stored tokens are not safe to use")
)

// storeError is an ErrCorrupt or ErrUnsafe with its own message.
type storeError struct {
	kind error // ErrCorrupt or ErrUnsafe
	msg  string
	err  error
}

func (e *storeError) Error() string        { return e.msg }
func (e *storeError) Is(target error) bool { return target == e.kind }
func (e *storeError) Unwrap() error        { return e.err }

func corrupt(err error, format string, args ...any) error {
	return &storeError{kind: ErrCorrupt, msg: fmt.Sprintf(format, args...), err: err}
}

func unsafeErr(format string, args ...any) error {
	return &storeError{kind: ErrUnsafe, msg: fmt.Sprintf(format, args...)}
}

// UnreadableLister is implemented by stores that can name, and remove,
// entries that List skipped because they cannot be read (the file store:
// a damaged file holds no profile name).
type UnreadableLister interface {
	// Unreadable lists the locations of the entries List skipped, with why.
	Unreadable() ([]Unreadable, error)
	// DeleteUnreadable removes one of them; it refuses what is not safe to
	// remove (a symbolic link, another user's file).
	DeleteUnreadable(location string) error
}

// Unreadable is an entry that List skipped.
type Unreadable struct {
	Location string
	Err      error
}

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
