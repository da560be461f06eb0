package enterprise

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil"
	"github.com/distributed-system-analysis/pbench-auth/pkg/cmdutil"
	"github.com/distributed-system-analysis/pbench-auth/server/devbroker/devbrowser"
)

// TestProxy: with HTTPS_PROXY set, everything the CLI sends to the server
// and the broker goes through the proxy process, and nothing for the
// loopback callback does. The server and broker are called pbench.test, a
// name only the proxy resolves: the CLI reaches them through it or not at
// all. The browser has a proxy of its own, so that the CLI's proxy log holds
// the CLI's traffic only.
func TestProxy(t *testing.T) {
	e := newEnv(t, envOptions{host: "pbench.test"})
	e.waitReady(t)
	cliProxy, browserProxy := startProxy(t), startProxy(t)
	hostport := strings.TrimPrefix(e.url, "https://")
	env := func(kv ...string) cliOptions {
		m := map[string]string{cmdutil.CACertEnv: e.caFile}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return cliOptions{env: m, browser: e.browser(t, browserProxy.addr)}
	}
	proxied := env("HTTPS_PROXY", "http://"+cliProxy.addr)

	r := e.cli(t, env(), "call", "--anonymous", "--server", e.url, "/api/v1/endpoints")
	if r.code != cmdutil.ExitNetwork {
		t.Fatalf("without the proxy pbench.test must not resolve: exit %d\n%s", r.code, r.stderr)
	}

	r = e.cli(t, proxied, "login", "--server", e.url)
	if r.code != 0 {
		t.Fatalf("login through the proxy: exit %d\n%s", r.code, r.stderr)
	}
	// The server's endpoints, the broker's discovery, JWKS and token
	// endpoint share one tunnel (keep-alive); that login succeeded at all
	// shows they all went through it, as pbench.test resolves nowhere else.
	afterLogin := len(cliProxy.seen(t))
	if afterLogin == 0 {
		t.Fatal("the proxy saw nothing during login")
	}

	r = e.cli(t, proxied, "call", "--server", e.url, "/api/v1/user")
	if r.code != 0 || !strings.Contains(r.stdout, `"username":"alice"`) {
		t.Fatalf("call through the proxy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := len(cliProxy.seen(t)); n <= afterLogin {
		t.Errorf("call did not go through the proxy (%d requests before, %d after)", afterLogin, n)
	}

	for _, line := range cliProxy.seen(t) {
		if line != "CONNECT "+hostport {
			t.Errorf("the CLI's proxy saw %q, want only CONNECT %s", line, hostport)
		}
	}
	if len(browserProxy.seen(t)) == 0 {
		t.Error("the browser's proxy saw nothing: the test's browser is not proxied")
	}
	for _, line := range append(cliProxy.seen(t), browserProxy.seen(t)...) {
		if strings.Contains(line, "127.0.0.1") || strings.Contains(line, "localhost") {
			t.Errorf("a proxy saw loopback traffic: %q", line)
		}
	}

	// NO_PROXY is honoured: then pbench.test cannot be reached.
	before := len(cliProxy.seen(t))
	r = e.cli(t, env("HTTPS_PROXY", "http://"+cliProxy.addr, "NO_PROXY", ".test"), "call", "--server", e.url, "/api/v1/user")
	if r.code != cmdutil.ExitNetwork || len(cliProxy.seen(t)) != before {
		t.Errorf("NO_PROXY=.test: exit %d, proxy requests %d -> %d\n%s", r.code, before, len(cliProxy.seen(t)), r.stderr)
	}
}

// TestDeviceLoginThroughProxy: the device grant's endpoints (device
// authorization, token polling) go through the proxy with the internal CA.
func TestDeviceLoginThroughProxy(t *testing.T) {
	e := newEnv(t, envOptions{host: "pbench.test"})
	e.waitReady(t)
	cliProxy, browserProxy := startProxy(t), startProxy(t)
	stderr := &testutil.SyncBuffer{}
	approved := make(chan error, 1)
	go func() {
		var uri string
		deadline := time.Now().Add(time.Minute)
		for uri == "" && time.Now().Before(deadline) {
			if m := completeURI.FindStringSubmatch(stderr.String()); m != nil {
				uri = m[1]
			}
			time.Sleep(20 * time.Millisecond)
		}
		if uri == "" {
			approved <- errors.New("the CLI never printed a verification URI")
			return
		}
		approved <- devbrowser.ApproveDevice(t.Context(), e.browserClient(browserProxy.addr), uri, "", user, password)
	}()
	r := e.cli(t, cliOptions{stderr: stderr, env: map[string]string{
		"HTTPS_PROXY": "http://" + cliProxy.addr, cmdutil.CACertEnv: e.caFile,
	}}, "login", "--device", "--server", e.url)
	if err := <-approved; err != nil {
		t.Fatalf("approve: %v\n%s", err, r.stderr)
	}
	if r.code != 0 || !strings.Contains(r.stderr, "Logged in to "+e.url+" as "+user) {
		t.Fatalf("device login through the proxy: exit %d\n%s", r.code, r.stderr)
	}
	if len(cliProxy.seen(t)) == 0 {
		t.Error("the CLI's proxy saw nothing")
	}
}

var completeURI = regexp.MustCompile(`\(or open (\S+), which carries the code\)`)
