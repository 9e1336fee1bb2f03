package server

import (
	"context"
	"io"
	"math"
	"net/http"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
)

func TestMetricsListenerIsSeparate(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Metrics = "127.0.0.1:0"
	n := startNode(t, cfg)
	c, _ := newClient(t, n, "alice", "a", "tcp", true)
	if _, err := c.SendText(context.Background(), "alice", "note to self"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + n.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`magpie_gateway_connections{transport="tcp"} 1`, "magpie_logic_messages_stored_total 1", "magpie_goroutines", "magpie_heap_retained_idle_bytes", "magpie_runtime_sys_bytes"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// The public listener does not serve them.
	resp, err = http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /metrics: %d, want 404", resp.StatusCode)
	}
}

func TestTooManyConnectionsPerUser(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxConnsPerUser = 2
	n := startNode(t, cfg)
	newClient(t, n, "alice", "a", "tcp", true)
	newClient(t, n, "alice", "b", "tcp", false)
	c3 := newTestClient(n, "alice", "c")
	err := c3.Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "too many connections") {
		t.Fatalf("third connection: %v, want too many connections", err)
	}
	_ = c3.Close()
}

// The soak benchmark (W7) reads the GC pause gauges; they must be there
// and be numbers, the maximum at least the p99.
func TestMetricsGCPauses(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Metrics = "127.0.0.1:0"
	n := startNode(t, cfg)
	runtime.GC() // the node runs in this process: at least one pause
	resp, err := http.Get("http://" + n.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	got := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 || !strings.HasPrefix(f[0], "magpie_gc_pause_") {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Errorf("%s: %v", line, err)
		}
		got[f[0]] = v
	}
	p99, ok1 := got["magpie_gc_pause_p99_seconds"]
	pmax, ok2 := got["magpie_gc_pause_max_seconds"]
	if !ok1 || !ok2 {
		t.Fatalf("GC pause gauges missing:\n%s", body)
	}
	if p99 <= 0 || pmax < p99 || pmax > 10 {
		t.Errorf("p99 %g s, max %g s: want 0 < p99 ≤ max ≤ 10 s", p99, pmax)
	}
}

func TestHistQuantile(t *testing.T) {
	inf := math.Inf(1)
	h := &metrics.Float64Histogram{Counts: []uint64{0, 98, 1, 0, 1}, Buckets: []float64{math.Inf(-1), 0, 1e-4, 1e-3, 1e-2, inf}}
	for _, tc := range []struct{ q, want float64 }{{0.5, 1e-4}, {0.99, 1e-3}, {1, 1e-2}} {
		if got := histQuantile(h, tc.q); got != tc.want {
			t.Errorf("q %g: got %g, want %g", tc.q, got, tc.want)
		}
	}
	h.Counts = []uint64{0, 0, 0, 0, 0}
	if got := histQuantile(h, 0.99); got != 0 {
		t.Errorf("empty: got %g, want 0", got)
	}
}

// /debug/pprof/cmdline would show every flag, secrets included: it is not
// served, under any spelling, while the rest of pprof still is.
func TestMetricsListenerHidesTheCommandLine(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Metrics = "127.0.0.1:0"
	n := startNode(t, cfg)
	base := "http://" + n.MetricsAddr()
	for _, path := range []string{"/debug/pprof/cmdline", "/debug/pprof/cmdline/", "/debug/pprof/cmdline?debug=1", "/debug/pprof/./cmdline", "/debug/pprof//cmdline"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "test") {
			t.Errorf("GET %s: %d %q, want 404 without the command line", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/metrics"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, resp.StatusCode)
		}
	}
}

// With --metrics-token, every path of the metrics listener needs it.
func TestMetricsToken(t *testing.T) {
	const token = "metrics-token-0123456789"
	cfg := testConfig(t, t.TempDir())
	cfg.Metrics = "127.0.0.1:0"
	cfg.MetricsToken = token
	n := startNode(t, cfg)
	base := "http://" + n.MetricsAddr()
	tests := []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong", "Bearer metrics-token-0123456780", http.StatusUnauthorized},
		{"prefix", "Bearer metrics-token", http.StatusUnauthorized},
		{"basic", "Basic " + token, http.StatusUnauthorized},
		{"bare", token, http.StatusUnauthorized},
		{"right", "Bearer " + token, http.StatusOK},
		{"lower-case scheme", "bearer " + token, http.StatusOK},
	}
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/goroutine"} {
		for _, tt := range tests {
			req, _ := http.NewRequest("GET", base+path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s with %s: %d, want %d", path, tt.name, resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusUnauthorized && (strings.Contains(string(body), "magpie_") || resp.Header.Get("WWW-Authenticate") == "") {
				t.Errorf("%s with %s: refused with %q (WWW-Authenticate %q), want no metrics and a challenge", path, tt.name, body, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
}
