package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// metrics are the server's Prometheus metrics, in a registry of its own so
// that two servers in one process do not collide.
type metrics struct {
	registry    *prometheus.Registry
	requests    map[string]prometheus.Counter
	latency     prometheus.Histogram
	refreshOK   prometheus.Counter
	refreshFail prometheus.Counter
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
}

func newMetrics(cacheLen func() int) *metrics {
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pbench_auth_requests_total",
		Help: "HTTP requests by outcome (ok, public, anonymous, no_token, invalid, forbidden, unavailable, not_found, bad_path).",
	}, []string{"outcome"})
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pbench_auth_key_refreshes_total",
		Help: "Fetches of the broker's signing keys by result.",
	}, []string{"result"})
	m := &metrics{
		registry: reg,
		requests: map[string]prometheus.Counter{},
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "pbench_auth_token_validation_seconds",
			Help:    "Time to validate a token (cache hits included).",
			Buckets: []float64{1e-6, 1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 0.1, 1},
		}),
		refreshOK:   refreshes.WithLabelValues("ok"),
		refreshFail: refreshes.WithLabelValues("error"),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbench_auth_token_cache_hits_total", Help: "Tokens found in the verified-token cache.",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pbench_auth_token_cache_misses_total", Help: "Tokens not found in the verified-token cache.",
		}),
	}
	for _, o := range []string{outcomeOK, outcomePublic, outcomeNoToken, outcomeInvalid,
		outcomeForbidden, outcomeUnavailable, outcomeNotFound, outcomeAnonymous, outcomeBadPath} {
		m.requests[o] = requests.WithLabelValues(o)
	}
	reg.MustRegister(requests, refreshes, m.latency, m.cacheHits, m.cacheMisses,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pbench_auth_token_cache_entries", Help: "Entries in the verified-token cache.",
		}, func() float64 { return float64(cacheLen()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
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

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}
