package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func TestCountFDs(t *testing.T) {
	// The first pipe starts the runtime's poller (its own fds): make it now.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	n0, err := countFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	r, w, err = os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	n1, _ := countFDs(os.Getpid())
	r.Close()
	w.Close()
	n2, _ := countFDs(os.Getpid())
	if n1 != n0+2 || n2 != n0 {
		t.Errorf("fds before / with a pipe / after: %d / %d / %d, want n / n+2 / n", n0, n1, n2)
	}
	if _, err := countFDs(-1); err == nil {
		t.Error("countFDs(-1): no error")
	}
}

const metricsPage = `# HELP magpie_goroutines Goroutines in the process.
# TYPE magpie_goroutines gauge
magpie_goroutines 10412
magpie_heap_inuse_bytes 5.24288e+07
magpie_gc_pause_p99_seconds 0.000917504
magpie_gateway_connections{transport="tcp"} 10000
magpie_gateway_disconnects_total{code="0",name="closed by the client"} 3
not_a_number abc

`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(metricsPage))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"magpie_goroutines":                           10412,
		"magpie_heap_inuse_bytes":                     52428800,
		"magpie_gc_pause_p99_seconds":                 0.000917504,
		`magpie_gateway_connections{transport="tcp"}`: 10000,
		`magpie_gateway_disconnects_total{code="0",name="closed by the client"}`: 3,
	}
	if len(m) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(m), len(want), m)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s: got %v, want %v", k, m[k], v)
		}
	}
}

func TestScrapeMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, metricsPage)
	}))
	defer srv.Close()
	for _, addr := range []string{strings.TrimPrefix(srv.URL, "http://"), srv.URL, srv.URL + "/metrics"} {
		m, err := scrapeMetrics(context.Background(), srv.Client(), addr)
		if err != nil || m["magpie_goroutines"] != 10412 {
			t.Errorf("%s: %v, %v", addr, m, err)
		}
	}
}

func TestW7Verdicts(t *testing.T) {
	base := W7Sample{ProcMeasured: true, RSSKiB: 100 << 10, FDsMeasured: true, FDs: 10400, MetricsMeasured: true, Goroutines: 10450, GCPauseP99Ms: 0.5}
	ok := StepResult{Acked: 100}
	for _, tc := range []struct {
		name  string
		last  func(*W7Sample)
		w2    StepResult
		check string // the check whose verdict is tested
		want  string
	}{
		{"RSS +5 %", func(s *W7Sample) { s.RSSKiB = 105 << 10 }, ok, "RSS", verdictMet},
		{"RSS +5.1 %", func(s *W7Sample) { s.RSSKiB = 105<<10 + 200 }, ok, "RSS", verdictMissed},
		{"RSS shrank", func(s *W7Sample) { s.RSSKiB = 80 << 10 }, ok, "RSS", verdictMet},
		{"RSS no --pid", func(s *W7Sample) { s.ProcMeasured = false }, ok, "RSS", verdictNotMeasured},
		{"goroutines +209 of 10450 (2 %)", func(s *W7Sample) { s.Goroutines = 10659 }, ok, "goroutine", verdictMet},
		{"goroutines +210", func(s *W7Sample) { s.Goroutines = 10660 }, ok, "goroutine", verdictMissed},
		{"goroutines no --metrics", func(s *W7Sample) { s.MetricsMeasured = false }, ok, "goroutine", verdictNotMeasured},
		{"fds +10", func(s *W7Sample) { s.FDs = 10410 }, ok, "fd", verdictMet},
		{"fds +11", func(s *W7Sample) { s.FDs = 10411 }, ok, "fd", verdictMissed},
		{"fds fewer", func(s *W7Sample) { s.FDs = 10000 }, ok, "fd", verdictMet},
		{"GC p99 1 ms", func(s *W7Sample) { s.GCPauseP99Ms = 1 }, ok, "GC", verdictMet},
		{"GC p99 1.05 ms", func(s *W7Sample) { s.GCPauseP99Ms = 1.048576 }, ok, "GC", verdictMissed},
		{"ledger clean", nil, ok, "lost", verdictMet},
		{"ledger reordered", nil, StepResult{Acked: 100, Reordered: 1}, "lost", verdictMissed},
		{"ledger nothing ACKed", nil, StepResult{}, "lost", verdictMissed},
	} {
		last := base
		if tc.last != nil {
			tc.last(&last)
		}
		var got *Verdict
		vs := w7Verdicts([]W7Sample{base, last}, tc.w2, 0, 0)
		for i := range vs {
			if strings.Contains(vs[i].Check, tc.check) {
				got = &vs[i]
			}
		}
		if got == nil || got.Verdict != tc.want {
			t.Errorf("%s: got %+v, want %s", tc.name, got, tc.want)
		}
	}
}

func TestW7VerdictsOneSample(t *testing.T) {
	s := W7Sample{ProcMeasured: true, RSSKiB: 1, FDsMeasured: true, MetricsMeasured: true}
	for _, v := range w7Verdicts([]W7Sample{s}, StepResult{Acked: 1}, 0, 0)[:4] {
		if v.Verdict != verdictNotMeasured {
			t.Errorf("%s with one sample: %s, want %s", v.Check, v.Verdict, verdictNotMeasured)
		}
	}
}

func TestGrowthSlack(t *testing.T) {
	for _, tc := range []struct{ base, want int }{{0, 50}, {2500, 50}, {2550, 51}, {10450, 209}} {
		if got := growthSlack(tc.base, 50, 0.02); got != tc.want {
			t.Errorf("growthSlack(%d): got %d, want %d", tc.base, got, tc.want)
		}
	}
}

func TestIntervalLatency(t *testing.T) {
	var h, later Histogram
	for range 100 {
		h.Record(1e6) // 1 ms
	}
	prev := h
	prev.counts = append([]uint64(nil), h.counts...)
	for i := range 100 {
		v := int64(10e6 + i*1e5) // 10–19.9 ms
		h.Record(v)
		later.Record(v)
	}
	got := intervalLatency(&h, &prev)
	want := later.Summarize()
	if got.Count != 100 || got.P50 != want.P50 || got.P99 != want.P99 {
		t.Errorf("got %+v, want count 100, p50 %v, p99 %v", got, want.P50, want.P99)
	}
	if empty := intervalLatency(&h, &h); empty.Count != 0 || empty.P99 != 0 {
		t.Errorf("no new samples: got %+v", empty)
	}
}
