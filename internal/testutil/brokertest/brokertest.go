// Package brokertest runs the development broker (server/devbroker, a real
// OpenID Provider) inside a test, Keycloak-style under
// /realms/pbench-server/ of a loopback httptest server.
package brokertest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/server/devbroker"
)

// Broker is a development broker on an httptest server.
type Broker struct {
	*devbroker.Broker
	// Server is the loopback server; its Client reaches the broker.
	Server *httptest.Server
	// Mux serves the broker under /realms/pbench-server/; a test may add
	// its own routes (a Pbench server's /api/v1/endpoints, its API). Any
	// other path is 404.
	Mux *http.ServeMux
}

// Start runs a broker knowing users, with the realm's defaults (client
// pbench-client); it stops when the test ends.
func Start(t testing.TB, users ...devbroker.User) *Broker {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	prefix := "/realms/" + devbroker.DefaultRealm
	b, err := devbroker.New(devbroker.Options{Issuer: srv.URL + prefix, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(prefix+"/", b.Handler())
	return &Broker{Broker: b, Server: srv, Mux: mux}
}
