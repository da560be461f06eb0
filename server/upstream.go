package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the gateway's connections to the upstream (see Config).
const (
	// DefaultUpstreamMaxIdleConns covers a few hundred requests in flight.
	DefaultUpstreamMaxIdleConns = 256
	// DefaultUpstreamIdleTimeout is below nginx's keep-alive timeout (75s);
	// upstreams with shorter ones (gunicorn 2s, Apache 5s) need less.
	DefaultUpstreamIdleTimeout = 60 * time.Second
)

// newUpstreamTransport is the gateway's transport to the upstream: unlike
// http.DefaultTransport (2 idle connections per host), it keeps as many idle
// connections as cfg asks for, so that at steady state every request reuses
// one instead of dialing.
func newUpstreamTransport(cfg Config) (*http.Transport, error) {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	idle := cfg.UpstreamMaxIdleConns
	if idle == 0 {
		idle = DefaultUpstreamMaxIdleConns
	}
	idleTimeout := cfg.UpstreamIdleTimeout
	if idleTimeout == 0 {
		idleTimeout = DefaultUpstreamIdleTimeout
	}
	tr := &http.Transport{
		Proxy:                 nil, // the upstream is reached directly, whatever HTTP_PROXY says
		DialContext:           dialer.DialContext,
		MaxIdleConns:          idle, // one upstream host: the same bound overall
		MaxIdleConnsPerHost:   idle,
		MaxConnsPerHost:       cfg.UpstreamMaxConns,
		IdleConnTimeout:       idleTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// The client's Accept-Encoding goes upstream as it is and the answer
		// comes back as it is: no gzip added and undone in the gateway.
		DisableCompression: true,
		ForceAttemptHTTP2:  !cfg.UpstreamHTTP1Only,
	}
	if cfg.CACert != "" {
		pool, err := certPool(cfg.CACert)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if cfg.UpstreamHTTP1Only {
		// A non-nil, empty map turns off the transport's HTTP/2 upgrade.
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return tr, nil
}

// proxyBuffers lends the reverse proxy its copy buffers: without a pool it
// allocates 32 KiB per proxied request.
type proxyBuffers struct{ pool sync.Pool }

func (p *proxyBuffers) Get() []byte {
	if b, ok := p.pool.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, 32<<10)
}

func (p *proxyBuffers) Put(b []byte) { p.pool.Put(&b) }
