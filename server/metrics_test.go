package server

import (
	"bytes"
	"math"
	"os"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetricsExposition parses /metrics' text with Prometheus' own parser,
// and checks the types, the histogram's cumulative buckets, and that the
// Go and process figures are there and plausible.
func TestMetricsExposition(t *testing.T) {
	m := newMetrics(func() int { return 7 })
	for _, v := range []float64{0.5e-6, 2e-5, 2} {
		m.latency.Observe(v)
	}
	m.requests[outcomeOK].Inc()
	m.refresh(false)
	var b bytes.Buffer
	m.write(&b)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("Prometheus cannot parse /metrics: %v\n%s", err, b.String())
	}
	wantTypes := map[string]dto.MetricType{
		"pbench_auth_requests_total":           dto.MetricType_COUNTER,
		"pbench_auth_key_refreshes_total":      dto.MetricType_COUNTER,
		"pbench_auth_token_cache_hits_total":   dto.MetricType_COUNTER,
		"pbench_auth_token_cache_misses_total": dto.MetricType_COUNTER,
		"pbench_auth_token_cache_entries":      dto.MetricType_GAUGE,
		"pbench_auth_token_validation_seconds": dto.MetricType_HISTOGRAM,
		"go_goroutines":                        dto.MetricType_GAUGE,
		"go_memstats_alloc_bytes":              dto.MetricType_GAUGE,
	}
	for name, typ := range wantTypes {
		f := families[name]
		if f == nil || f.GetType() != typ {
			t.Errorf("%s: %v, want a %v", name, f, typ)
		}
	}
	if v := families["pbench_auth_token_cache_entries"].GetMetric()[0].GetGauge().GetValue(); v != 7 {
		t.Errorf("cache entries %v, want 7", v)
	}
	if n := len(families["pbench_auth_requests_total"].GetMetric()); n != len(outcomes) {
		t.Errorf("%d outcomes, want all %d (zero included)", n, len(outcomes))
	}

	h := families["pbench_auth_token_validation_seconds"].GetMetric()[0].GetHistogram()
	if h.GetSampleCount() != 3 || math.Abs(h.GetSampleSum()-2.0000205) > 1e-12 {
		t.Errorf("count %d sum %v, want 3 and 2.0000205", h.GetSampleCount(), h.GetSampleSum())
	}
	wantCum := map[float64]uint64{1e-6: 1, 1e-5: 1, 5e-5: 2, 1e-3: 2, 1: 2}
	for _, bk := range h.GetBucket() {
		if want, ok := wantCum[bk.GetUpperBound()]; ok && bk.GetCumulativeCount() != want {
			t.Errorf("bucket le=%v: %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), want)
		}
	}

	if families["go_goroutines"].GetMetric()[0].GetGauge().GetValue() < 1 {
		t.Error("go_goroutines < 1")
	}
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc: no process metrics")
	}
	value := func(name string) float64 {
		f := families[name]
		if f == nil {
			t.Fatalf("no %s", name)
		}
		if c := f.GetMetric()[0].GetCounter(); c != nil {
			return c.GetValue()
		}
		return f.GetMetric()[0].GetGauge().GetValue()
	}
	if rss := value("process_resident_memory_bytes"); rss < 1<<20 {
		t.Errorf("process_resident_memory_bytes %v: not a Go process's RSS", rss)
	}
	if open, maxFDs := value("process_open_fds"), value("process_max_fds"); open < 3 || maxFDs < open {
		t.Errorf("process_open_fds %v, process_max_fds %v", open, maxFDs)
	}
	start := time.Unix(int64(value("process_start_time_seconds")), 0)
	if now := time.Now(); start.After(now.Add(2*time.Second)) || start.Before(now.Add(-24*time.Hour)) {
		t.Errorf("process_start_time_seconds %v, now %v", start, now)
	}
	if cpu := value("process_cpu_seconds_total"); cpu < 0 {
		t.Errorf("process_cpu_seconds_total %v", cpu)
	}
}
