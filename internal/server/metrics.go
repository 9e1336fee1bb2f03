package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/gateway"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/proto/wire"
)

// serveMetrics starts the operator listener (--metrics): Prometheus text
// metrics and pprof. It is separate from the public HTTP listener so
// neither is exposed by accident. /debug/pprof/cmdline is not served: it
// shows the process's flags, secrets included (--token-secret,
// --push-keys, ...). With --metrics-token every path needs the token.
func (n *Node) serveMetrics(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", n.writeMetrics)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", http.NotFound)
	n.metrics = &http.Server{Handler: requireBearer(n.cfg.MetricsToken, mux), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	n.metricsL = ln
	n.goServe("metrics", func() {
		if err := n.metrics.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("metrics server stopped", "err", err)
		}
	}, func(context.Context) error { return n.metrics.Close() })
	return nil
}

// requireBearer lets a request through to h only with "Authorization:
// Bearer token" (the scheme in any case, as RFC 7235 has it); an empty
// token lets everything through. The comparison takes the same time
// whatever the guess.
func requireBearer(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	want := []byte(token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="magpie-metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// MetricsAddr is the bound metrics address, or "".
func (n *Node) MetricsAddr() string {
	if n.metricsL == nil {
		return ""
	}
	return n.metricsL.Addr().String()
}

func (n *Node) writeMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	m := func(name, help, typ string, v any) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", name, help, name, typ, name, v)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m("magpie_goroutines", "Goroutines in the process.", "gauge", runtime.NumGoroutine())
	m("magpie_heap_inuse_bytes", "Heap bytes in use.", "gauge", ms.HeapInuse)
	m("magpie_stack_inuse_bytes", "Goroutine stack bytes in use.", "gauge", ms.StackInuse)
	// Heap the process holds but does not use: RSS beyond heap and stacks
	// in use is this, the runtime's own memory, or SQLite's (outside Go).
	m("magpie_heap_retained_idle_bytes", "Heap bytes held from the OS but not in use (idle minus released).", "gauge", ms.HeapIdle-ms.HeapReleased)
	m("magpie_runtime_sys_bytes", "Bytes the Go runtime obtained from the OS in all (heap, stacks, metadata).", "gauge", ms.Sys)
	m("magpie_gc_pause_total_seconds", "Total GC pause time.", "counter", float64(ms.PauseTotalNs)/1e9)
	p99, pmax := gcPauses()
	m("magpie_gc_pause_p99_seconds", "99th percentile of GC stop-the-world pauses since the process started (upper edge of the runtime's bucket).", "gauge", p99)
	m("magpie_gc_pause_max_seconds", "Longest GC stop-the-world pause since the process started (upper edge of the runtime's bucket).", "gauge", pmax)
	if n.gw != nil {
		st := n.gw.Stats()
		fmt.Fprintf(w, "# HELP magpie_gateway_connections Open client connections.\n# TYPE magpie_gateway_connections gauge\n")
		for _, k := range gateway.Kinds() {
			fmt.Fprintf(w, "magpie_gateway_connections{transport=%q} %d\n", k.String(), st.ConnsByKind[k])
		}
		m("magpie_gateway_auths_total", "Successful authentications.", "counter", st.Auths)
		m("magpie_gateway_auth_failures_total", "Authentications refused.", "counter", st.AuthFailures)
		m("magpie_gateway_frames_in_total", "Frames received from clients.", "counter", st.FramesIn)
		m("magpie_gateway_frames_out_total", "Frames written to clients.", "counter", st.FramesOut)
		m("magpie_gateway_slow_consumers_total", "Connections dropped for not reading.", "counter", st.SlowConsumers)
		m("magpie_gateway_rate_limited_total", "Requests refused by the per-connection rate limit.", "counter", st.RateLimited)
		codes := make([]int, 0, len(st.Disconnects))
		for c := range st.Disconnects {
			codes = append(codes, int(c))
		}
		sort.Ints(codes)
		fmt.Fprintf(w, "# HELP magpie_gateway_disconnects_total Closed connections by code (0: closed by the client or network).\n# TYPE magpie_gateway_disconnects_total counter\n")
		for _, c := range codes {
			code := wire.Code(c)
			fmt.Fprintf(w, "magpie_gateway_disconnects_total{code=\"%d\",name=%q} %d\n", c, code.String(), st.Disconnects[code])
		}
	}
	if n.svc != nil {
		st := n.svc.Stats()
		m("magpie_logic_messages_stored_total", "Messages committed.", "counter", st.Stored)
		m("magpie_logic_duplicates_total", "Sends answered with the original seq (retries).", "counter", st.Duplicates)
		m("magpie_logic_commit_batches_total", "Group-commit transactions.", "counter", st.Batches)
		m("magpie_logic_commit_failures_total", "Group-commit transactions that failed.", "counter", st.BatchFailures)
		m("magpie_logic_send_queue", "Sends waiting for the commit loop.", "gauge", st.Queued)
		m("magpie_logic_password_hashes_total", "Argon2id hashes run (logins, including unknown users, and registrations).", "counter", st.PasswordHashes)
		fmt.Fprintf(w, "# HELP magpie_logic_limited_total Requests refused by an abuse limit (docs/operations.md).\n# TYPE magpie_logic_limited_total counter\n")
		for l, v := range st.Limited {
			fmt.Fprintf(w, "magpie_logic_limited_total{limit=%q} %d\n", logic.Limit(l).String(), v)
		}
	}
	if n.api != nil {
		m("magpie_http_downloads_cut_total", "File downloads cut because the reader fell below --download-min-rate.", "counter", n.api.Stats().DownloadsCut)
	}
}

// gcPauses returns the p99 and the maximum of the process's GC
// stop-the-world pauses since it started, from the runtime's cumulative
// histogram (the soak benchmark W7 checks p99 ≤ 1 ms; MemStats keeps only
// the last 256 pauses). Both are 0 before the first GC.
func gcPauses() (p99, longest float64) {
	s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0, 0
	}
	h := s[0].Value.Float64Histogram()
	return histQuantile(h, 0.99), histQuantile(h, 1)
}

// histQuantile is the upper edge of the bucket holding the ceil(q*n)-th
// smallest sample, so it never understates a pause; the runtime's buckets
// are at most 25 % wide. The overflow bucket has no upper edge: its lower
// one is used.
func histQuantile(h *metrics.Float64Histogram, q float64) float64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	if n == 0 {
		return 0
	}
	rank := max(uint64(math.Ceil(q*float64(n))), 1)
	var seen uint64
	for i, c := range h.Counts {
		if seen += c; seen >= rank {
			if hi := h.Buckets[i+1]; !math.IsInf(hi, 1) {
				return hi
			}
			return h.Buckets[i]
		}
	}
	return 0
}
