// Package discovery is seed steps 1–2, the client's bootstrap: ask the Pbench
// server which identity broker and client id it uses (GET /api/v1/endpoints),
// then read that broker's OpenID discovery document with go-oidc.
//
// Everything here talks to servers the user named, over the HTTP client the
// caller gives; no step sends a credential.
package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/distributed-system-analysis/pbench-auth/internal/errmark"
	"github.com/distributed-system-analysis/pbench-auth/pkg/peerurl"
)

// MaxBodyBytes bounds every response body this package reads (the Pbench
// endpoints document and the broker's discovery document): 1 MiB, far above
// any real one, so that a wrong URL cannot make the CLI read without end.
const MaxBodyBytes = 1 << 20

// Kinds of error, for errors.Is (the command layer maps them to exit codes).
var (
	// ErrUnreachable marks a server or broker that cannot be reached, or
	// that answers 5xx: trying again later may help.
	ErrUnreachable = errors.New("unreachable")
	// ErrInvalidInput marks a server URL, issuer or client id that cannot
	// be used: the caller must fix it.
	ErrInvalidInput = errors.New("invalid input")
)

// EndpointsPath is where a Pbench server publishes its client configuration.
const EndpointsPath = "/api/v1/endpoints"

// Endpoints is the part of a Pbench server's GET /api/v1/endpoints answer
// that the client needs. Other fields (Pbench's "api", "uri", ...) are ignored.
type Endpoints struct {
	Identification string  `json:"identification"`
	OpenID         *OpenID `json:"openid"`
}

// OpenID is the "openid" section: Pbench's names (server, realm, client) plus
// issuer, which lets a non-Keycloak broker be used.
type OpenID struct {
	// Server is the broker's base URL (Keycloak's, without /realms/...).
	Server string `json:"server"`
	Realm  string `json:"realm"`
	// Client is the client id the CLI uses at the broker.
	Client string `json:"client"`
	// Issuer, when set, wins over Server + "/realms/" + Realm.
	Issuer string `json:"issuer"`
}

// IssuerURL is Issuer when set, else Keycloak's Server + "/realms/" + Realm.
func (o *OpenID) IssuerURL() string {
	if o.Issuer != "" {
		return o.Issuer
	}
	return strings.TrimRight(o.Server, "/") + "/realms/" + o.Realm
}

func (o *OpenID) validate() error {
	var missing []string
	if o.Client == "" {
		missing = append(missing, `"client"`)
	}
	if o.Issuer == "" && (o.Server == "" || o.Realm == "") {
		missing = append(missing, `"issuer" (or "server" and "realm")`)
	}
	if len(missing) > 0 {
		return fmt.Errorf("its \"openid\" section lacks %s", strings.Join(missing, " and "))
	}
	return nil
}

// checkURLs refuses a "server" or "issuer" that is not an absolute http(s)
// URL (both are checked when present, even the one IssuerURL ignores), and
// then the issuer login would use. source names the server that sent them.
func (o *OpenID) checkURLs(source string) error {
	for _, f := range []struct{ name, value string }{{`"openid.server"`, o.Server}, {`"openid.issuer"`, o.Issuer}} {
		if f.value == "" {
			continue
		}
		if _, err := peerurl.Check(f.name, source, f.value); err != nil {
			return err
		}
	}
	_, err := peerurl.Check(`the issuer ("openid.server" + "/realms/" + "openid.realm")`, source, o.IssuerURL())
	return err
}

// FetchEndpoints is seed steps 1–2: GET server + /api/v1/endpoints, and check
// that the answer names a broker (issuer) and a client id, with "server" and
// "issuer" absolute http(s) URLs (peerurl.Check).
//
// A server that cannot be reached, or answers 5xx, gives an error marked
// ErrUnreachable; a server URL that is not one, ErrInvalidInput; an answer that is not a Pbench endpoints document
// gives an error that says what was expected.
func FetchEndpoints(ctx context.Context, hc *http.Client, server string) (*Endpoints, error) {
	u := strings.TrimRight(server, "/") + EndpointsPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errmark.With(ErrInvalidInput, fmt.Errorf("server URL %q: %w", server, err))
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errmark.With(ErrUnreachable, fmt.Errorf("cannot reach the Pbench server: %w", err))
	}
	defer func() { _ = resp.Body.Close() }()

	notPbench := func(why string) error {
		return fmt.Errorf("%s is not a Pbench server's endpoints document: %s; "+
			"expected JSON with an \"openid\" section {\"server\", \"realm\", \"client\"} or {\"issuer\", \"client\"}; check --server", u, why)
	}
	switch {
	case resp.StatusCode >= 500:
		return nil, errmark.With(ErrUnreachable,
			fmt.Errorf("the Pbench server is not available: GET %s answered %s; try again later", u, resp.Status))
	case resp.StatusCode != http.StatusOK:
		return nil, notPbench("it answered " + resp.Status)
	}
	body, err := readBounded(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", u, err)
	}
	var ep Endpoints
	if err := json.Unmarshal(body, &ep); err != nil {
		ct := resp.Header.Get("Content-Type")
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			return nil, notPbench(fmt.Sprintf("it answered %q, not JSON", ct))
		}
		return nil, notPbench("malformed JSON: " + err.Error())
	}
	if ep.OpenID == nil {
		return nil, fmt.Errorf("the Pbench server at %s announces no identity broker (no \"openid\" section in %s): "+
			"its authentication is not configured; ask its operator, or log in against a broker directly with --issuer and --client-id",
			server, EndpointsPath)
	}
	if err := ep.OpenID.validate(); err != nil {
		return nil, notPbench(err.Error())
	}
	if err := ep.OpenID.checkURLs("the Pbench server at " + server + " (" + EndpointsPath + ")"); err != nil {
		return nil, err
	}
	return &ep, nil
}

// readBounded reads r to the end, failing beyond MaxBodyBytes.
func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBodyBytes {
		return nil, errTooLarge
	}
	return b, nil
}

var errTooLarge = fmt.Errorf("response body larger than %d bytes", MaxBodyBytes)
