// Command proxy is a small forwarding HTTP proxy for the enterprise tests:
// CONNECT tunnels (HTTPS) and plain HTTP requests, like a company's egress
// proxy. It listens on 127.0.0.1, prints "listening on ADDR" on stdout, and
// appends one line per request, "CONNECT host:port" or "GET http://...",
// to the -log file. Hosts ending in -map (default ".test") are dialled at
// 127.0.0.1, so that tests can use names that the machine cannot resolve
// and that Go's clients do not exempt from proxying as loopback names.
//
// It is a test tool: no authentication, no access control.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

func main() {
	logFile := flag.String("log", "", "append one line per proxied request to this file (required)")
	suffix := flag.String("map", ".test", "dial hosts ending in this suffix at 127.0.0.1")
	flag.Parse()
	if *logFile == "" {
		log.Fatal("proxy: -log is required")
	}
	p := &proxy{suffix: *suffix, logFile: *logFile}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	log.Fatal(srv.Serve(ln))
}

type proxy struct {
	suffix  string
	logFile string
	mu      sync.Mutex
}

func (p *proxy) record(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.logFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		log.Printf("proxy: %v", err)
		return
	}
	defer func() { _ = f.Close() }()
	_, _ = fmt.Fprintln(f, line)
}

// dialAddr maps a host:port to the address actually dialled.
func (p *proxy) dialAddr(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err == nil && strings.HasSuffix(host, p.suffix) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return hostport
}

func (p *proxy) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", p.dialAddr(addr))
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.record("CONNECT " + r.Host)
		p.tunnel(w, r)
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "this is a proxy: send absolute URLs or CONNECT", http.StatusBadRequest)
		return
	}
	p.record(r.Method + " " + r.URL.String())
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Connection")
	out.Header.Del("Proxy-Authorization")
	tr := &http.Transport{DialContext: p.dial}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	upstream, err := p.dial(r.Context(), "tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		_ = upstream.Close()
		http.Error(w, "cannot tunnel", http.StatusInternalServerError)
		return
	}
	client, buf, err := hj.Hijack()
	if err != nil {
		_ = upstream.Close()
		return
	}
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		_ = upstream.Close()
		_ = client.Close()
		return
	}
	go func() {
		// Bytes the client sent after the CONNECT request, then the rest.
		if n := buf.Reader.Buffered(); n > 0 {
			b, _ := buf.Peek(n)
			_, _ = upstream.Write(b)
		}
		_, _ = io.Copy(upstream, client)
		_ = upstream.Close()
	}()
	_, _ = io.Copy(client, upstream)
	_ = client.Close()
}
