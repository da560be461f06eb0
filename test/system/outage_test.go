package system

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// TestBrokerOutagesAndKeyRotation runs the broker (serve --dev) and the
// validating server (serve --issuer) as two processes, and takes the broker
// away and back:
//
//  1. broker down when serve starts: /readyz and token checks answer 503;
//     the broker starts: serve recovers by itself, without a restart;
//  2. broker killed: tokens signed by a key serve already knows are still
//     validated (a token never seen before, so not from the cache);
//  3. broker restarted with another --dev-key: its new tokens are accepted
//     and the removed key's tokens are refused, by the same serve process.
//
// refresh-interval and min-refresh-interval are 1s (YAML) to keep it short.
func TestBrokerOutagesAndKeyRotation(t *testing.T) {
	brokerAddr := testutil.ReserveAddr(t)
	issuer := "http://" + brokerAddr + "/realms/pbench-server"
	keys := t.TempDir()
	cfg := writeConfig(t, "refresh-interval: 1s\nmin-refresh-interval: 1s\n")
	serveAddr := testutil.ReserveAddr(t)
	base := "http://" + serveAddr
	serve := startServe(t, "serve", "--issuer", issuer, "--listen", serveAddr, "--config", cfg)
	waitFor(t, "serve listening", func() error { _, _, err := get(base+"/healthz", ""); return err })

	// 1. The broker is down.
	notYet := forgedToken("rsa-unknown")
	waitFor(t, "readyz 503 with a reason", func() error {
		status, body, err := get(base+"/readyz", "")
		if err == nil && (status != 503 || !strings.Contains(body, "openid discovery")) {
			err = fmt.Errorf("status %d: %s", status, body)
		}
		return err
	})
	if err := expectStatus(base+"/api/v1/user", notYet, 503); err != nil {
		t.Fatalf("a token while the broker has never been reached: %v", err)
	}
	broker, _ := startBroker(t, brokerAddr, filepath.Join(keys, "key1.pem"))
	waitFor(t, "serve ready after the broker started", func() error { return expectStatus(base+"/readyz", "", 200) })
	first := brokerToken(t, issuer)
	if err := expectStatus(base+"/api/v1/user", first, 200); err != nil {
		t.Fatalf("token after recovery: %v", err)
	}

	// 2. The broker is killed: known keys keep working.
	unseen := brokerToken(t, issuer)  // presented only after the kill
	retired := brokerToken(t, issuer) // presented only after the rotation
	failedBefore := metric(t, base, `pbench_auth_key_refreshes_total{result="error"}`)
	broker.Kill()
	waitFor(t, "a failed key refresh", func() error {
		if n := metric(t, base, `pbench_auth_key_refreshes_total{result="error"}`); n <= failedBefore {
			return fmt.Errorf("%d failed refreshes", n)
		}
		return nil
	})
	if err := expectStatus(base+"/api/v1/user", unseen, 200); err != nil {
		t.Errorf("a token under a known key while the broker is down: %v", err)
	}
	if err := expectStatus(base+"/readyz", "", 200); err != nil {
		t.Errorf("readyz while the broker is down but the keys are known: %v", err)
	}

	// 3. Rotation: the broker comes back with another key.
	_, _ = startBroker(t, brokerAddr, filepath.Join(keys, "key2.pem"))
	rotated := brokerToken(t, issuer)
	if kid(rotated) == kid(first) {
		t.Fatalf("the restarted broker signs with the same kid %q: no rotation", kid(first))
	}
	waitFor(t, "the new key accepted", func() error { return expectStatus(base+"/api/v1/user", rotated, 200) })
	waitFor(t, "the removed key refused (cached token)", func() error { return expectStatus(base+"/api/v1/user", first, 401) })
	status, body, err := get(base+"/api/v1/user", retired)
	if err != nil || status != 401 || !strings.Contains(body, "unknown signing key") {
		t.Errorf("an unseen token under the removed key: status %d, body %s, err %v", status, body, err)
	}
	if !serve.Running() {
		t.Error("serve exited: it must ride out the outages without a restart")
	}
}

// TestUnknownKidFloodIsBoundedAcrossProcesses sends 300 tokens naming
// unknown keys, 30 at a time, to a real serve in front of a real broker:
// the JWKS is fetched at most once (min-refresh-interval 1m), counted by
// serve's key-refresh counter.
func TestUnknownKidFloodIsBoundedAcrossProcesses(t *testing.T) {
	brokerAddr := testutil.ReserveAddr(t)
	_, issuer := startBroker(t, brokerAddr, filepath.Join(t.TempDir(), "key.pem"))
	cfg := writeConfig(t, "refresh-interval: 1h\nmin-refresh-interval: 1m\n")
	serveAddr := testutil.ReserveAddr(t)
	base := "http://" + serveAddr
	startServe(t, "serve", "--issuer", issuer, "--listen", serveAddr, "--config", cfg)
	waitFor(t, "serve ready", func() error { return expectStatus(base+"/readyz", "", 200) })

	const n, parallel = 300, 30
	before := metric(t, base, `pbench_auth_key_refreshes_total{result="ok"}`)
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := expectStatus(base+"/api/v1/user", forgedToken(fmt.Sprintf("flood-%d", i)), 401); err != nil {
				t.Errorf("flood token %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if got := metric(t, base, `pbench_auth_key_refreshes_total{result="ok"}`) - before; got > 1 {
		t.Errorf("%d unknown kids caused %d JWKS fetches, want at most 1", n, got)
	}
	// The broker's keys still work after the flood.
	if err := expectStatus(base+"/api/v1/user", brokerToken(t, issuer), 200); err != nil {
		t.Errorf("a real token after the flood: %v", err)
	}
}

// forgedToken is a well-formed RS256 JWS naming kid, with a junk signature.
func forgedToken(kid string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT","kid":"`+kid+`"}`)) + "." + enc([]byte(`{"sub":"x"}`)) + "." + enc([]byte("not a signature"))
}

// kid reads a JWS header's kid.
func kid(token string) string {
	h, _, _ := strings.Cut(token, ".")
	b, _ := base64.RawURLEncoding.DecodeString(h)
	_, after, _ := strings.Cut(string(b), `"kid":"`)
	k, _, _ := strings.Cut(after, `"`)
	return k
}
