package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of the limits that keep slow or idle clients from holding the
// server's connections (see Config.ReadTimeout, StreamIdleTimeout and
// MaxConnections).
const (
	DefaultReadTimeout       = 30 * time.Second
	DefaultStreamIdleTimeout = 60 * time.Second
	// readHeaderTimeout bounds the request line and headers.
	readHeaderTimeout = 10 * time.Second
	// keepAliveIdleTimeout closes a kept-alive connection with no request.
	keepAliveIdleTimeout = 2 * time.Minute
)

// HTTPServer returns the http.Server that `serve` runs handler with:
//
//   - the request line and headers must arrive within 10s;
//   - the whole request, body included, within ReadTimeout (default 30s),
//     and the answer must be taken within ReadTimeout too; the gateway
//     instead allows any length as long as no read or write of the stream
//     stalls for StreamIdleTimeout (default 60s);
//   - a kept-alive connection with no new request is closed after 2 minutes.
//
// Used with the listener of s.Listener, whose connections it tracks.
func (s *Server) HTTPServer(handler http.Handler, errLog *slog.Logger) *http.Server {
	hs := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: min(readHeaderTimeout, s.cfg.ReadTimeout),
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.ReadTimeout,
		IdleTimeout:       keepAliveIdleTimeout,
		MaxHeaderBytes:    64 << 10, // Keycloak tokens are a few KiB; larger headers get 431
		ConnState:         s.conns.setState,
	}
	if errLog != nil {
		hs.ErrorLog = slog.NewLogLogger(errLog.Handler(), slog.LevelWarn)
	}
	return hs
}

// Listener wraps ln so that at most MaxConnections connections are open at
// once. It never refuses one: when the limit is reached, a new connection
// is accepted and the one that has done the least for the longest is
// closed instead — an idle kept-alive connection first, then one still
// waiting for its first request, then the oldest busy one. A flood of slow
// clients (slowloris: headers or bodies sent a byte at a time) therefore
// cannot keep a health check or a real client out: each new connection
// pushes out the oldest slow one, and the process never runs out of file
// descriptors. Use the http.Server of HTTPServer, whose ConnState feeds it.
// Call it once per Server: the limit and its metrics are the Server's.
func (s *Server) Listener(ln net.Listener) net.Listener {
	s.conns.Listener = ln
	return s.conns
}

// connLimiter is the listener of Server.Listener.
type connLimiter struct {
	net.Listener
	max     int
	log     *slog.Logger
	evicted atomic.Int64
	onEvict func()

	mu       sync.Mutex
	open     map[*limitedConn]struct{}
	lastWarn time.Time
}

func newConnLimiter(max int, log *slog.Logger, onEvict func()) *connLimiter {
	return &connLimiter{max: max, log: log, onEvict: onEvict, open: map[*limitedConn]struct{}{}}
}

// limitedConn is a connection counted by a connLimiter.
type limitedConn struct {
	net.Conn
	l     *connLimiter
	once  sync.Once
	state http.ConnState // guarded by l.mu
	since time.Time      // when it entered state, guarded by l.mu
}

func (c *limitedConn) Close() error {
	c.forget()
	return c.Conn.Close()
}

func (c *limitedConn) forget() {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.open, c)
		c.l.mu.Unlock()
	})
}

func (l *connLimiter) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	c := &limitedConn{Conn: raw, l: l, state: http.StateNew, since: time.Now()}
	l.mu.Lock()
	var victim *limitedConn
	if l.max > 0 && len(l.open) >= l.max {
		victim = l.victimLocked()
		delete(l.open, victim)
	}
	l.open[c] = struct{}{}
	warn := victim != nil && time.Since(l.lastWarn) > time.Minute
	if warn {
		l.lastWarn = time.Now()
	}
	l.mu.Unlock()
	if victim != nil {
		victim.once.Do(func() {}) // already forgotten
		_ = victim.Conn.Close()
		l.evicted.Add(1)
		if l.onEvict != nil {
			l.onEvict()
		}
		if warn {
			l.log.Warn("connection limit reached: closing the least active connections to accept new ones (a flood of slow clients?); raise max-connections if this is normal load",
				"max_connections", l.max)
		}
	}
	return c, nil
}

// evictionRank orders states by how readily a connection in them is closed.
var evictionRank = map[http.ConnState]int{http.StateIdle: 0, http.StateNew: 1, http.StateActive: 2, http.StateHijacked: 3}

// victimLocked picks the connection to close: the lowest rank, then the
// longest in that state.
func (l *connLimiter) victimLocked() *limitedConn {
	var v *limitedConn
	for c := range l.open {
		if v == nil || evictionRank[c.state] < evictionRank[v.state] ||
			evictionRank[c.state] == evictionRank[v.state] && c.since.Before(v.since) {
			v = c
		}
	}
	return v
}

// setState is the http.Server's ConnState hook.
func (l *connLimiter) setState(nc net.Conn, state http.ConnState) {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	c, ok := nc.(*limitedConn)
	if !ok {
		return
	}
	if state == http.StateClosed {
		c.forget()
		return
	}
	l.mu.Lock()
	c.state, c.since = state, time.Now()
	l.mu.Unlock()
}

// openConns is the number of connections open now.
func (l *connLimiter) openConns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

// Bounds of the default MaxConnections.
const (
	reservedDescriptors = 64    // listener, log, broker and upstream clients, files
	minMaxConnections   = 16    // even under a tiny descriptor limit
	maxMaxConnections   = 65536 // when the limit is unknown or huge
)

// defaultMaxConnections derives MaxConnections from the descriptor limit.
func defaultMaxConnections(gateway bool) int {
	n := descriptorLimit()
	if n == 0 {
		return maxMaxConnections
	}
	n -= reservedDescriptors
	if gateway {
		n /= 2
	}
	return min(max(n, minMaxConnections), maxMaxConnections)
}
