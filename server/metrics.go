package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
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
)

var outcomes = []string{outcomeOK, outcomePublic, outcomeNoToken, outcomeInvalid,
	outcomeForbidden, outcomeUnavailable, outcomeNotFound}

// metrics are the server's Prometheus metrics, each server with its own.
//
// They are written in Prometheus' text format (version 0.0.4) by this file
// rather than with the Prometheus client library: that library registers its
// default collectors in its package initialisation, which every run of the
// pbench-auth binary (`call` included, whose start-up is a target of
// issue 7) would pay, about 0.85 ms, for a server that may never start.
// Besides the pbench_auth_* metrics, /metrics has the usual go_* and
// process_* ones (goroutines, memory, GC, CPU time, RSS, file descriptors).
type metrics struct {
	requests    map[string]*counter // by outcome; read-only after newMetrics
	latency     *histogram
	refreshOK   counter
	refreshFail counter
	cacheHits   counter
	cacheMisses counter
	cacheLen    func() int
}

func newMetrics(cacheLen func() int) *metrics {
	m := &metrics{
		requests: make(map[string]*counter, len(outcomes)),
		latency:  newHistogram([]float64{1e-6, 1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 1e-2, 0.1, 1}),
		cacheLen: cacheLen,
	}
	for _, o := range outcomes {
		m.requests[o] = new(counter)
	}
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
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b bytes.Buffer
		m.write(&b)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header()["Cache-Control"] = noStore
		_, _ = w.Write(b.Bytes())
	})
}

// write writes every metric: go_*, pbench_auth_*, process_*.
func (m *metrics) write(w io.Writer) {
	writeGoMetrics(w)
	m.latency.write(w, "pbench_auth_token_validation_seconds", "Time to validate a token (cache hits included).")
	family(w, "pbench_auth_key_refreshes_total", "counter", "Fetches of the broker's signing keys by result.")
	fmt.Fprintf(w, "pbench_auth_key_refreshes_total{result=\"error\"} %d\n", m.refreshFail.Load())
	fmt.Fprintf(w, "pbench_auth_key_refreshes_total{result=\"ok\"} %d\n", m.refreshOK.Load())
	family(w, "pbench_auth_requests_total", "counter",
		"HTTP requests by outcome (ok, public, no_token, invalid, forbidden, unavailable, not_found).")
	for _, o := range outcomes {
		fmt.Fprintf(w, "pbench_auth_requests_total{outcome=%q} %d\n", o, m.requests[o].Load())
	}
	family(w, "pbench_auth_token_cache_entries", "gauge", "Entries in the verified-token cache.")
	fmt.Fprintf(w, "pbench_auth_token_cache_entries %d\n", m.cacheLen())
	family(w, "pbench_auth_token_cache_hits_total", "counter", "Tokens found in the verified-token cache.")
	fmt.Fprintf(w, "pbench_auth_token_cache_hits_total %d\n", m.cacheHits.Load())
	family(w, "pbench_auth_token_cache_misses_total", "counter", "Tokens not found in the verified-token cache.")
	fmt.Fprintf(w, "pbench_auth_token_cache_misses_total %d\n", m.cacheMisses.Load())
	writeProcessMetrics(w)
}

func family(w io.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func formatFloat(f float64) string {
	if math.IsInf(f, +1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// counter is a Prometheus counter.
type counter struct{ atomic.Uint64 }

// Inc adds one.
func (c *counter) Inc() { c.Add(1) }

// histogram is a Prometheus histogram with fixed upper bounds. Its count is
// the total of its buckets, so that a scrape never sees them disagree.
type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records v.
func (h *histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *histogram) write(w io.Writer, name, help string) {
	family(w, name, "histogram", help)
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
		le := math.Inf(+1)
		if i < len(h.bounds) {
			le = h.bounds[i]
		}
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", name, formatFloat(le), n)
	}
	fmt.Fprintf(w, "%s_sum %s\n%s_count %d\n", name, formatFloat(math.Float64frombits(h.sum.Load())), name, n)
}

// writeGoMetrics writes the Go runtime's figures, with the names of
// Prometheus' Go collector (go_goroutines, go_memstats_*, go_info) where it
// has them.
func writeGoMetrics(w io.Writer) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauges := []struct {
		name, help string
		value      float64
	}{
		{"go_goroutines", "Number of goroutines that currently exist.", float64(runtime.NumGoroutine())},
		{"go_memstats_alloc_bytes", "Number of bytes allocated in heap and currently in use.", float64(ms.HeapAlloc)},
		{"go_memstats_heap_inuse_bytes", "Number of heap bytes that are in use.", float64(ms.HeapInuse)},
		{"go_memstats_heap_objects", "Number of currently allocated objects.", float64(ms.HeapObjects)},
		{"go_memstats_next_gc_bytes", "Number of heap bytes when next garbage collection will take place.", float64(ms.NextGC)},
		{"go_memstats_sys_bytes", "Number of bytes obtained from system.", float64(ms.Sys)},
	}
	for _, g := range gauges {
		family(w, g.name, "gauge", g.help)
		fmt.Fprintf(w, "%s %s\n", g.name, formatFloat(g.value))
	}
	family(w, "go_gc_cycles_total", "counter", "Completed GC cycles.")
	fmt.Fprintf(w, "go_gc_cycles_total %d\n", ms.NumGC)
	family(w, "go_gc_pause_seconds_total", "counter", "Total time the world was stopped for GC.")
	fmt.Fprintf(w, "go_gc_pause_seconds_total %s\n", formatFloat(float64(ms.PauseTotalNs)/1e9))
	family(w, "go_info", "gauge", "Information about the Go environment.")
	fmt.Fprintf(w, "go_info{version=%q} 1\n", runtime.Version())
}

// writeProcessMetrics writes what Prometheus' process collector does (same
// names), from /proc; nothing where there is no /proc.
func writeProcessMetrics(w io.Writer) {
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return
	}
	// The fields after the command name, which is in parentheses and may
	// hold spaces: state is field 3, utime 14, stime 15, starttime 22,
	// vsize 23, rss 24 (pages).
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return
	}
	f := strings.Fields(string(stat[end+1:]))
	if len(f) < 22 {
		return
	}
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i-3], 64); return v }
	const userHZ = 100 // sysconf(_SC_CLK_TCK) on Linux
	gauge := func(name, help string, v float64) {
		family(w, name, "gauge", help)
		fmt.Fprintf(w, "%s %s\n", name, formatFloat(v))
	}
	family(w, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
	fmt.Fprintf(w, "process_cpu_seconds_total %s\n", formatFloat((num(14)+num(15))/userHZ))
	if limit, ok := maxOpenFiles(); ok {
		gauge("process_max_fds", "Maximum number of open file descriptors.", limit)
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		gauge("process_open_fds", "Number of open file descriptors.", float64(len(fds)))
	}
	gauge("process_resident_memory_bytes", "Resident memory size in bytes.", num(24)*float64(os.Getpagesize()))
	if boot, ok := bootTime(); ok {
		gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", boot+num(22)/userHZ)
	}
	gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", num(23))
}

// maxOpenFiles reads the soft "Max open files" limit from /proc/self/limits.
func maxOpenFiles() (float64, bool) {
	return scanProc("/proc/self/limits", "Max open files", 3)
}

// bootTime reads btime from /proc/stat.
func bootTime() (float64, bool) {
	return scanProc("/proc/stat", "btime", 1)
}

// scanProc returns the field'th space-separated field of the first line of
// file starting with prefix.
func scanProc(file, prefix string, field int) (float64, bool) {
	fh, err := os.Open(file) // #nosec G304 -- fixed /proc paths
	if err != nil {
		return 0, false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			if field >= len(f) {
				return 0, false
			}
			v, err := strconv.ParseFloat(f[field], 64)
			return v, err == nil
		}
	}
	return 0, false
}
