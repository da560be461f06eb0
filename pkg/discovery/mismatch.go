package discovery

import "fmt"

// IssuerMismatchError is Discover's error when the broker's discovery
// document names another issuer than the one discovery started from. Tokens
// carry the document's issuer in "iss", so nothing would verify.
type IssuerMismatchError struct {
	// WellKnown is the discovery document's URL.
	WellKnown string
	// Expected is the issuer discovery started from (announced by the
	// Pbench server, or given with --issuer); Discovered is the document's.
	Expected, Discovered string
}

func (e *IssuerMismatchError) Error() string {
	return fmt.Sprintf("issuer mismatch: the broker's discovery document (%s) names issuer %q, not %q; "+
		"issuers must match exactly (scheme, host, port, path, trailing slash): fix the issuer the Pbench server announces, or the one given with --issuer",
		e.WellKnown, e.Discovered, e.Expected)
}
