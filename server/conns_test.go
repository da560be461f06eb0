package server

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/distributed-system-analysis/pbench-auth/internal/testutil/testca"
)

// serveHardened runs h.srv as `serve` does (HTTPServer on Listener) and
// returns its address.
func serveHardened(t *testing.T, h *harness) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := h.srv.HTTPServer(h.srv.Handler(), nil)
	go func() { _ = hs.Serve(h.srv.Listener(ln)) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

// serveHardenedTLS is serveHardened over TLS (HTTP/2), with a client that
// trusts it.
func serveHardenedTLS(t *testing.T, h *harness) (string, *http.Client) {
	t.Helper()
	ca := testca.New(t, "Test CA")
	leaf := ca.Issue(t, testca.Options{Hosts: []string{"127.0.0.1"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := h.srv.HTTPServer(h.srv.Handler(), nil)
	hs.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{leaf.TLS}}
	go func() { _ = hs.ServeTLS(h.srv.Listener(ln), "", "") }()
	t.Cleanup(func() { _ = hs.Close() })
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}
	return "https://" + ln.Addr().String(), &http.Client{Transport: tr, Timeout: time.Minute}
}

// slowRequest opens a connection and sends a request whose body (or, with
// body "", whose headers) never finishes.
func slowRequest(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitClosed reads c until the server closes it; it fails the test if the
// server still holds it after a minute (a bound, not a measurement).
func waitClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server still holds the slow connection after a minute")
	}
	return string(b)
}

const slowBody = "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n%s\r\nab"

// TestSlowBodiesAreCut: a request whose body never finishes is answered or
// closed within ReadTimeout on every own endpoint, with or without a token,
// and one whose headers never finish within the header timeout.
func TestSlowBodiesAreCut(t *testing.T) {
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	addr := serveHardened(t, h)
	auth := "Authorization: Bearer " + ti.token(h.clock.Now(), nil) + "\r\n"
	for _, tc := range []struct{ name, head string }{
		{"user with token", fmt.Sprintf(slowBody, "/api/v1/user", auth)},
		{"user without token", fmt.Sprintf(slowBody, "/api/v1/user", "")},
		{"healthz", fmt.Sprintf(slowBody, "/healthz", "")},
		{"unknown path", fmt.Sprintf(slowBody, "/nowhere", "")},
		{"headers", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := slowRequest(t, addr, tc.head)
			waitClosed(t, c)
		})
	}
}

// TestGatewayStreamIdleTimeout: a proxied body that stalls is the client's
// 408 (the upstream is not blamed), and the connection is closed.
func TestGatewayStreamIdleTimeout(t *testing.T) {
	upstream := newUpstream(t)
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) {
		c.Upstream = upstream
		c.StreamIdleTimeout = 300 * time.Millisecond
	})
	addr := serveHardened(t, h)
	auth := "Authorization: Bearer " + ti.token(h.clock.Now(), func(c map[string]any) { delete(c, "resource_access") }) + "\r\n"
	c := slowRequest(t, addr, fmt.Sprintf(slowBody, "/api/v1/upload", auth))
	answer := waitClosed(t, c)
	if !strings.HasPrefix(answer, "HTTP/1.1 408 ") || !strings.Contains(answer, "stalled") {
		t.Errorf("answer to a stalled body: %q, want 408", answer)
	}
}

// TestGatewayMalformedChunkedBodyIs400: the client's broken chunked
// encoding is its own 400, not the upstream's 502.
func TestGatewayMalformedChunkedBodyIs400(t *testing.T) {
	upstream := newUpstream(t)
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) { c.Upstream = upstream })
	addr := serveHardened(t, h)
	token := ti.token(h.clock.Now(), func(c map[string]any) { delete(c, "resource_access") })
	for name, body := range map[string]string{
		"bad chunk size":   "zz\r\nabc\r\n0\r\n\r\n",
		"chunk too long":   "2\r\nabcdef\r\n0\r\n\r\n",
		"missing trailer":  "3\r\nabc0\r\n\r\n",
		"size overflowing": "ffffffffffffffffff\r\nabc\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c := slowRequest(t, addr, "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
				"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+body)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d (%s), want 400", resp.StatusCode, b)
			}
		})
	}
	// A well-formed chunked body still goes through.
	c := slowRequest(t, addr, "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != "got 3 bytes" {
		t.Errorf("good chunked body: status %d, %q", resp.StatusCode, b)
	}
}

// newUpstream is an upstream API that reads the whole body.
func newUpstream(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = fmt.Fprintf(w, "got %d bytes", len(b))
	})}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return "http://" + ln.Addr().String()
}

// TestConnectionCapKeepsHealthzAnswering: with more slow clients than
// MaxConnections, a new client still gets its answer (the least active
// slow connection is closed for it), and the open count stays at the cap.
func TestConnectionCapKeepsHealthzAnswering(t *testing.T) {
	ti := newTestIssuer(t)
	const limit = 8
	h := newHarness(t, ti, func(c *Config) { c.MaxConnections = limit; c.ReadTimeout = time.Hour })
	addr := serveHardened(t, h)
	for i := range 3 * limit {
		head := fmt.Sprintf(slowBody, "/api/v1/user", "")
		if i%2 == 0 {
			head = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
		}
		slowRequest(t, addr, head)
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	for range 3 {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("healthz under %d slow connections (cap %d): %v", 3*limit, limit, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz: %d", resp.StatusCode)
		}
	}
	if n := h.srv.conns.openConns(); n > limit {
		t.Errorf("%d connections open, cap %d", n, limit)
	}
	if n := h.srv.conns.evicted.Load(); n < 2*limit {
		t.Errorf("%d connections evicted, want at least %d", n, 2*limit)
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	n := descriptorLimit()
	if n == 0 {
		t.Skip("no descriptor limit on this system")
	}
	plain, gw := defaultMaxConnections(false), defaultMaxConnections(true)
	if plain > n-reservedDescriptors && plain > minMaxConnections {
		t.Errorf("default %d leaves fewer than %d of %d descriptors", plain, reservedDescriptors, n)
	}
	if gw > plain/2+1 && gw > minMaxConnections {
		t.Errorf("gateway default %d is not half of %d", gw, plain)
	}
}

// TestGatewayLongRequestsAreNotCut: a proxied request may last longer than
// ReadTimeout as long as it progresses: an upstream that thinks, and a body
// sent in parts with short pauses, both get through.
func TestGatewayLongRequestsAreNotCut(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) { testGatewayLongRequest(t, h2) })
	}
}

func testGatewayLongRequest(t *testing.T, h2 bool) {
	const readTimeout = 100 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	slowUpstream := &http.Server{ReadHeaderTimeout: time.Minute, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		time.Sleep(5 * readTimeout) // thinking, past the server's ReadTimeout
		_, _ = fmt.Fprintf(w, "got %d bytes", len(b))
	})}
	go func() { _ = slowUpstream.Serve(ln) }()
	t.Cleanup(func() { _ = slowUpstream.Close() })
	ti := newTestIssuer(t)
	h := newHarness(t, ti, func(c *Config) {
		c.Upstream = "http://" + ln.Addr().String()
		c.ReadTimeout = readTimeout
		c.StreamIdleTimeout = time.Minute
	})
	var base string
	var client *http.Client
	if h2 {
		base, client = serveHardenedTLS(t, h)
	} else {
		base, client = "http://"+serveHardened(t, h), &http.Client{Timeout: time.Minute}
	}
	token := ti.token(h.clock.Now(), func(c map[string]any) { delete(c, "resource_access") })

	pr, pw := io.Pipe()
	go func() {
		for range 5 {
			_, _ = pw.Write([]byte("part "))
			time.Sleep(readTimeout / 2)
		}
		_ = pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/upload", pr)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
		t.Fatalf("protocol %s, want HTTP/%d", resp.Proto, want)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "got 25 bytes" {
		t.Errorf("long gateway request: %d %q", resp.StatusCode, b)
	}
}
