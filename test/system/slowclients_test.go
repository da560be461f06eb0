package system

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
)

// TestSlowClientsCannotTakeServeDown is the slowloris attack on a real serve
// --dev limited to 512 file descriptors: 600 connections that send their
// headers, or a body, a byte short and then nothing, to serve's own
// endpoints, with and without a token, and to the dev broker's token
// endpoint. Before the connection cap, the 512th made accept fail and
// /healthz went unanswered until the attackers left. Now /healthz keeps
// answering during the attack (the least active connections are closed to
// let it in), and everything works again once the attackers are gone.
func TestSlowClientsCannotTakeServeDown(t *testing.T) {
	// The shell's ulimit sets both the soft and the hard limit: the Go
	// runtime cannot raise it back.
	cmd := exec.Command("sh", "-c", `ulimit -n 512 && exec "$0" serve --dev --listen 127.0.0.1:0`, bin) // #nosec G204 -- the binary under test
	p := testutil.StartProcess(t, "serve --dev (512 descriptors)", cmd)
	var base string
	waitFor(t, "serve to listen", func() error {
		m := listeningOn.FindStringSubmatch(p.Output())
		if m == nil {
			return fmt.Errorf("not listening yet")
		}
		base = m[1]
		return nil
	})
	addr := strings.TrimPrefix(base, "http://")
	issuer := base + "/realms/pbench-server"
	waitFor(t, "readiness", func() error { return expectStatus(base+"/readyz", "", 200) })
	token := brokerToken(t, issuer)

	heads := []string{
		"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ",
		"POST /api/v1/user HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nab",
		"POST /api/v1/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\nContent-Length: 1000\r\n\r\nab",
		"POST /realms/pbench-server/protocol/openid-connect/token HTTP/1.1\r\nHost: x\r\n" +
			"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ngrant_type=",
	}
	const attackers = 600
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := range attackers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attacker %d: %v", i, err)
		}
		conns = append(conns, c)
		// A write to a connection the server already closed may fail: that
		// is the defence working.
		_, _ = io.WriteString(c, heads[i%len(heads)])
	}

	// During the attack: /healthz answers (bounded by a minute, not timed).
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 5 {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			t.Fatalf("healthz %d under %d slow connections: %v", i, attackers, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz %d under attack: status %d", i, resp.StatusCode)
		}
	}
	if n := metric(t, base, "pbench_auth_connections_evicted_total"); n == 0 {
		t.Error("no connection was evicted: was the limit reached?")
	}
	if !p.Running() {
		t.Fatal("serve exited under the attack")
	}

	// After it: everything answers, a token is still accepted.
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil
	waitFor(t, "healthz after the attack", func() error { return expectStatus(base+"/healthz", "", 200) })
	if err := expectStatus(base+"/api/v1/user", token, 200); err != nil {
		t.Errorf("user after the attack: %v", err)
	}
	if err := expectStatus(issuer+"/.well-known/openid-configuration", "", 200); err != nil {
		t.Errorf("broker after the attack: %v", err)
	}
}
