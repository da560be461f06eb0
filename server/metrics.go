package server

import (
	"net/http"

	vm "github.com/VictoriaMetrics/metrics"
)

// Request outcomes, the values of the "outcome" label and of the log field.
const (
	outcomeOK          = "ok"          // valid token, request served
	outcomePublic      = "public"      // public endpoint, no token needed
	outcomeNoToken     = "no_token"    // 401: no Authorization header
	outcomeInvalid     = "invalid"     // 401: the token was refused
	outcomeForbidden   = "forbidden"   // 403: a required role is missing
	outcomeUnavailable = "unavailable" // 503: the broker's keys cannot be had
	outcomeNotFound    = "not_found"   // 404
	outcomeAnonymous   = "anonymous"   // no credentials, let through by an anonymous rule
	outcomeBadPath     = "bad_path"    // 400: a path servers read differently
)

// metrics are the server's Prometheus metrics, in a set of its own so that
// two servers in one process do not collide.
//
// They use github.com/VictoriaMetrics/metrics rather than Prometheus'
// client_golang: the latter's package init (default registry, Go and process
// collectors, procfs, protobuf) ran in every pbench-auth process, client
// commands included, and cost them about 0.5-0.9 ms of start-up.
type metrics struct {
	set         *vm.Set
	requests    map[string]*vm.Counter
	latency     *vm.PrometheusHistogram
	refreshOK   *vm.Counter
	refreshFail *vm.Counter
	cacheHits   *vm.Counter
	cacheMisses *vm.Counter
}

// latencyBuckets are the upper bounds of pbench_auth_token_validation_seconds.
var latencyBuckets = []float64{1e-6, 1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 0.1, 1}

func newMetrics(cacheLen func() int) *metrics {
	// TYPE lines, as Prometheus' client wrote them (a process-wide switch).
	vm.ExposeMetadata(true)
	set := vm.NewSet()
	m := &metrics{
		set:         set,
		requests:    map[string]*vm.Counter{},
		latency:     set.NewPrometheusHistogramExt("pbench_auth_token_validation_seconds", latencyBuckets),
		refreshOK:   set.NewCounter(`pbench_auth_key_refreshes_total{result="ok"}`),
		refreshFail: set.NewCounter(`pbench_auth_key_refreshes_total{result="error"}`),
		cacheHits:   set.NewCounter("pbench_auth_token_cache_hits_total"),
		cacheMisses: set.NewCounter("pbench_auth_token_cache_misses_total"),
	}
	for _, o := range []string{outcomeOK, outcomePublic, outcomeNoToken, outcomeInvalid,
		outcomeForbidden, outcomeUnavailable, outcomeNotFound, outcomeAnonymous, outcomeBadPath} {
		m.requests[o] = set.NewCounter(`pbench_auth_requests_total{outcome="` + o + `"}`)
	}
	set.NewGauge("pbench_auth_token_cache_entries", func() float64 { return float64(cacheLen()) })
	return m
}

func (m *metrics) cache(hit bool) {
	if hit {
		m.cacheHits.Inc()
	} else {
		m.cacheMisses.Inc()
	}
}

func (m *metrics) refresh(ok bool) {
	if ok {
		m.refreshOK.Inc()
	} else {
		m.refreshFail.Inc()
	}
}

// handler serves the metrics in Prometheus' text format: the server's
// pbench_auth_* ones, then the Go runtime's (go_*) and the process' (process_*).
func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		m.set.WritePrometheus(w)
		vm.WriteProcessMetrics(w)
	})
}

// registerConns adds the connection limiter's metrics: open connections,
// and those closed to make room (see Server.Listener).
func (m *metrics) registerConns(l *connLimiter) {
	m.set.NewGauge("pbench_auth_connections_open", func() float64 { return float64(l.openConns()) })
	evicted := m.set.NewCounter("pbench_auth_connections_evicted_total")
	l.onEvict = evicted.Inc
}
