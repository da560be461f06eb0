//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// dexVersion is the Dex that test/e2e/dex/build.sh builds; keep them in step.
const dexVersion = "v0.0.0-20260806151424-ab64ed778070"

// The upstream identity provider's user. aliceHash is bcrypt(alicePassword,
// cost 10): golang.org/x/crypto is not in pbench-auth's module graph.
const (
	aliceEmail    = "alice@idp.example"
	aliceName     = "alice"
	alicePassword = "alice-e2e-password"
	aliceHash     = "$2a$10$73VDXRhBTUZz7Kb9wMvJ1uFUGYnWhGsFJihBiA7A4TRpRTZWm9h7S"
)

// dexBinary finds the Dex built by test/e2e/dex/build.sh: $PBENCH_AUTH_DEX,
// else the build cache.
func dexBinary() string {
	if p := os.Getenv("PBENCH_AUTH_DEX"); p != "" {
		return p
	}
	cache := os.Getenv("PBENCH_AUTH_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "pbench-auth")
	}
	return filepath.Join(cache, "dex-"+dexVersion)
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// startDex writes config (Dex reads YAML, of which JSON is a subset) and
// runs `dex serve`, with sessions on when sessions is set (the broker's
// refresh grant and its end_session_endpoint need them), then waits for its
// discovery document. It returns the issuer.
func startDex(t *testing.T, name, addr string, sessions bool, config map[string]any) string {
	t.Helper()
	issuer := "http://" + addr + "/dex"
	config["issuer"] = issuer
	config["storage"] = map[string]any{"type": "memory"}
	web := map[string]any{"http": addr}
	if extra, ok := config["web"].(map[string]any); ok {
		for k, v := range extra {
			web[k] = v
		}
	}
	config["web"] = web
	config["logger"] = map[string]any{"level": "debug"}
	b, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	daemon(t, name, []string{"DEX_SESSIONS_ENABLED=" + strconv.FormatBool(sessions)}, dexBinary(), "serve", path)
	waitHTTP(t, name, issuer+"/.well-known/openid-configuration")
	return issuer
}

// startDexPair starts the upstream identity provider (Dex with alice in its
// password database) and the identity broker (Dex federating to it through
// its oidc connector, with the public client pbench-client). The broker's
// access tokens live 30 s, within session's minimum refresh margin, so every
// `call` refreshes them through both Dex instances first.
//
// With a dashboardOrigin (scheme://host:port of serve), pbench-client is
// registered as a browser application instead: the dashboard's redirect URI
// (Dex then accepts no other, loopback included) and post-logout redirect
// URI, and the origin allowed to call Dex's token endpoint (CORS,
// web.allowedOrigins).
func startDexPair(t *testing.T, dashboardOrigin string) (broker string) {
	t.Helper()
	idpAddr, brokerAddr := testutil.ReserveAddr(t), testutil.ReserveAddr(t)
	brokerCallback := "http://" + brokerAddr + "/dex/callback"

	// The IdP runs without sessions, so it advertises no end_session_endpoint
	// and the broker ends its own session on logout without passing the
	// logout upstream: Dex's oidc connector would send the IdP a
	// post_logout_redirect_uri without id_token_hint, which Dex refuses,
	// and the broker session would never end.
	idp := startDex(t, "dex-idp", idpAddr, false, map[string]any{
		"oauth2":           map[string]any{"skipApprovalScreen": true},
		"enablePasswordDB": true,
		"staticPasswords": []map[string]any{{
			"email": aliceEmail, "username": aliceName, "preferredUsername": aliceName,
			"userID": "0c7a6d3e-alice", "hash": aliceHash,
		}},
		"staticClients": []map[string]any{{
			"id": "dex-broker", "secret": "broker-to-idp-secret", "name": "Identity broker",
			"redirectURIs": []string{brokerCallback},
		}},
	})

	client := map[string]any{
		// Public, with no redirect URIs: Dex then accepts any loopback
		// redirect, whatever port the CLI listens on. Its refresh tokens
		// end with the broker session (Dex cannot revoke them otherwise),
		// which `logout --browser` ends.
		"id": "pbench-client", "name": "Pbench", "public": true,
		"refreshTokenLifetime": "session",
	}
	web := map[string]any{}
	if dashboardOrigin != "" {
		client["redirectURIs"] = []string{dashboardOrigin + "/dashboard/"}
		client["postLogoutRedirectURIs"] = []string{dashboardOrigin + "/dashboard/"}
		web["allowedOrigins"] = []string{dashboardOrigin}
	}
	return startDex(t, "dex-broker", brokerAddr, true, map[string]any{
		"web": web,
		// The broker asks the user to approve, and offers two ways in (its
		// own password database and the upstream IdP), like a Keycloak realm
		// with an identity provider: the browser has to pick the upstream.
		"oauth2":           map[string]any{"skipApprovalScreen": false},
		"expiry":           map[string]any{"idTokens": "30s"},
		"enablePasswordDB": true,
		"staticPasswords": []map[string]any{{
			"email": "local@broker.example", "username": "local", "userID": "local-0001", "hash": aliceHash,
		}},
		"connectors": []map[string]any{{
			"type": "oidc", "id": "upstream", "name": "Upstream IdP",
			"config": map[string]any{
				"issuer": idp, "clientID": "dex-broker", "clientSecret": "broker-to-idp-secret",
				"redirectURI": brokerCallback,
				"scopes":      []string{"openid", "profile", "email", "offline_access"},
			},
		}},
		"staticClients": []map[string]any{client},
	})
}
