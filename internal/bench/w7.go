package bench

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"time"
)

// W7Result is the outcome of the soak: W1's idle connections and W2's
// open-loop pairs side by side, sampled at a fixed interval.
type W7Result struct {
	Transport    string  `json:"transport"`
	Conns        int     `json:"idle_connections_target"`
	Connected    int     `json:"idle_connected"`
	ConnFailed   int     `json:"idle_connect_failures"`
	Dropped      int64   `json:"idle_dropped"`
	Users        int     `json:"idle_users"`
	Sources      int     `json:"source_addresses"`
	PingSecs     float64 `json:"ping_interval_s"`
	Pings        int64   `json:"pings_sent"`
	Pongs        int64   `json:"pongs_received"`
	Pairs        int     `json:"pairs"`
	Rate         float64 `json:"rate_per_s"`
	WarmupSecs   float64 `json:"warmup_s"`
	DurationSecs float64 `json:"duration_s"`
	SampleSecs   float64 `json:"sample_interval_s"`
	// Samples[0] is the baseline, taken at the end of the warm-up; its
	// counts are the warm-up's.
	Samples []W7Sample `json:"samples"`
	// W2 is the whole window as W2 reports a step; its latencies cover
	// every message intended inside the window.
	W2       StepResult `json:"w2"`
	Verdicts []Verdict  `json:"verdicts"`
	Errors   []string   `json:"errors,omitempty"`
}

// W7Sample is one sample of the server and of the interval since the
// previous one.
type W7Sample struct {
	At              float64 `json:"t_s"` // since the end of the warm-up
	ProcMeasured    bool    `json:"proc_measured"`
	RSSKiB          int64   `json:"server_rss_kib"`
	ServerCores     float64 `json:"server_cpu_cores"`
	FDsMeasured     bool    `json:"fds_measured"`
	FDs             int     `json:"server_fds"`
	MetricsMeasured bool    `json:"metrics_measured"`
	Goroutines      int     `json:"server_goroutines"`
	HeapInuseMiB    float64 `json:"server_heap_inuse_mib"`
	// Over the server's whole life (magpie_gc_pause_*_seconds).
	GCPauseP99Ms float64 `json:"server_gc_pause_p99_ms"`
	GCPauseMaxMs float64 `json:"server_gc_pause_max_ms"`
	// W2 in the interval: latencies of ACKs and deliveries that arrived in
	// it, timed from the intended send.
	Sent      uint64          `json:"sent"`
	Acked     uint64          `json:"acked"`
	Failed    uint64          `json:"failed"`
	Delivered uint64          `json:"delivered"`
	Ack       IntervalLatency `json:"ack_latency"`
	Deliver   IntervalLatency `json:"send_to_deliver_latency"`
	Dropped   int64           `json:"idle_dropped_so_far"`
}

// IntervalLatency is one sample interval's latencies (the maximum is not
// known per interval: W2's histograms are cumulative).
type IntervalLatency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P99   float64 `json:"p99_ms"`
}

type w7Opts struct {
	idle  w1Opts
	send  w2Opts
	rate  float64
	every time.Duration
}

func w7Flags(fs *flag.FlagSet, smoke *bool) func(context.Context, *common) (report, error) {
	var o w7Opts
	w1ConnFlags(fs, &o.idle)
	w2SendFlags(fs, &o.send)
	fs.Float64Var(&o.rate, "rate", 2500, "W2 open-loop rate in msgs/s: 30 % of the ~8.6 k msgs/s closed-loop maximum measured on the project's 2-core machine (docs/benchmarks.md)")
	fs.DurationVar(&o.every, "sample", 30*time.Second, "sampling interval")
	fs.Duration("duration", 30*time.Minute, "soak window after the warm-up")
	fs.Duration("warmup", 2*time.Minute, "load before the baseline sample, so start-up allocation does not count as drift")
	return func(ctx context.Context, c *common) (report, error) {
		if c.Smoke {
			smokeDefault(c, "conns", &o.idle.conns, 100)
			smokeDefault(c, "users", &o.idle.users, 4)
			smokeDefault(c, "pairs", &o.send.pairs, 5)
			smokeDefault(c, "rate", &o.rate, 50)
			smokeDefault(c, "duration", &c.Duration, 20*time.Second)
			smokeDefault(c, "sample", &o.every, 5*time.Second)
			smokeDefault(c, "warmup", &c.Warmup, 3*time.Second)
		}
		return runW7(ctx, c, o)
	}
}

func runW7(ctx context.Context, c *common, o w7Opts) (report, error) {
	if o.idle.conns < 1 || o.idle.users < 1 || o.send.pairs < 1 || o.send.schedulers < 1 || o.rate <= 0 || o.every <= 0 {
		return nil, errors.New("bench w7: --conns, --users, --pairs, --schedulers, --rate and --sample must be positive")
	}
	o.idle.users = min(o.idle.users, o.idle.conns)
	res := &W7Result{Transport: c.Transport, Conns: o.idle.conns, Sources: max(1, len(c.Sources)), Pairs: o.send.pairs, Rate: o.rate,
		WarmupSecs: c.Warmup.Seconds(), DurationSecs: c.Duration.Seconds(), SampleSecs: o.every.Seconds()}

	logins, err := w1Logins(ctx, c, o.idle, "w7")
	if err != nil {
		return nil, err
	}
	res.Users = len(logins)
	idle := newIdleConns(o.idle.conns)
	defer idle.close()
	c.logf("w7: opening %d idle %s connections", o.idle.conns, c.Transport)
	if err := idle.open(ctx, c, logins, o.idle.conc); err != nil {
		return nil, err
	}
	res.ConnFailed = int(idle.failed.Load())
	res.Connected = o.idle.conns - res.ConnFailed
	res.PingSecs = idle.startPings(ctx, o.idle.ping).Seconds()

	b := newW2(c, o.send, 1)
	defer b.closeClients()
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	s := &w7Sampler{c: c, b: b, idle: idle, every: o.every, hc: &http.Client{}, errs: map[string]int{}}
	b.monitor = s.run
	c.logf("w7: %d pairs at %.0f msgs/s beside %d idle connections; warm-up %v, soak %v, sample every %v",
		o.send.pairs, o.rate, res.Connected, c.Warmup, c.Duration, o.every)
	st, err := b.runStep(ctx, 0, o.rate, 0)
	if err == nil {
		w2r := &W2Result{Steps: []StepResult{st}}
		b.finalCheck(ctx, w2r)
		st = w2r.Steps[0]
	}
	// runStep has waited for the sampler, even when cancelled.
	res.Samples = s.samples
	res.Errors = appendErrorCounts(res.Errors, s.errs)
	res.W2 = st
	res.Pings, res.Pongs, res.Dropped = idle.pings.Load(), idle.pongs.Load(), idle.dropped.Load()
	res.Errors = idle.errors(res.Errors)
	res.Verdicts = w7Verdicts(res.Samples, res.W2, res.ConnFailed, res.Dropped)
	return res, err
}

// w7Sampler takes the samples from inside W2's step (as its monitor), so
// they line up with the step's measurement window.
type w7Sampler struct {
	c     *common
	b     *w2
	idle  *idleConns
	every time.Duration
	hc    *http.Client

	samples          []W7Sample
	errs             map[string]int
	prevAck, prevDel Histogram // W2's latencies at the previous sample
	t0               time.Time
	prevProc         procSample
	prev             [4]uint64 // sent, acked, failed, delivered at the previous sample
}

// run samples at measureFrom (the baseline), then every interval, and at
// end.
func (s *w7Sampler) run(ctx context.Context, measureFrom, end time.Time) {
	if !sleepUntil(ctx, measureFrom) {
		return
	}
	s.take(ctx)
	for next := measureFrom; next.Before(end); {
		next = next.Add(s.every)
		if next.After(end) {
			next = end
		}
		if !sleepUntil(ctx, next) {
			return
		}
		s.take(ctx)
	}
}

func (s *w7Sampler) take(ctx context.Context) {
	now := time.Now()
	if len(s.samples) == 0 {
		s.t0 = now
	}
	smp := W7Sample{At: now.Sub(s.t0).Seconds(), Dropped: s.idle.dropped.Load()}
	ack, del := s.b.latencies()
	smp.Ack, smp.Deliver = intervalLatency(&ack, &s.prevAck), intervalLatency(&del, &s.prevDel)
	s.prevAck, s.prevDel = ack, del
	st := s.b.steps[0]
	cur := [4]uint64{st.sent.Load(), st.acked.Load(), st.failed.Load(), st.delivered.Load()}
	smp.Sent, smp.Acked, smp.Failed, smp.Delivered = cur[0]-s.prev[0], cur[1]-s.prev[1], cur[2]-s.prev[2], cur[3]-s.prev[3]
	s.prev = cur
	s.readServer(ctx, &smp)
	s.samples = append(s.samples, smp)
	s.c.logf("w7: t=%.0fs RSS %.1f MiB, %d fds, %d goroutines, heap %.1f MiB, GC p99 %.3f ms; acked %d, ack p99 %.2f ms, deliver p99 %.2f ms (0: not measured)",
		smp.At, float64(smp.RSSKiB)/1024, smp.FDs, smp.Goroutines, smp.HeapInuseMiB, smp.GCPauseP99Ms, smp.Acked, smp.Ack.P99, smp.Deliver.P99)
}

// readServer fills in what /metrics and /proc say about the server.
// Failures are counted, not fatal: a soak should not die of one.
func (s *w7Sampler) readServer(ctx context.Context, smp *W7Sample) {
	// Scrape first: the scrape's keep-alive connection is then open at
	// every fd count, the baseline's included.
	s.readMetrics(ctx, smp)
	pid := s.c.PID
	if pid <= 0 {
		return
	}
	p := readProc(pid)
	if p.Valid {
		smp.ProcMeasured, smp.RSSKiB = true, p.RSS/1024
		smp.ServerCores = deltaCPU(s.prevProc, p).Cores
	} else {
		s.errs["/proc: "+p.errMsg]++
	}
	s.prevProc = p
	if n, err := countFDs(pid); err == nil {
		smp.FDsMeasured, smp.FDs = true, n
	} else {
		s.errs["fds: "+err.Error()]++
	}
}

func (s *w7Sampler) readMetrics(ctx context.Context, smp *W7Sample) {
	if s.c.Metrics == "" {
		return
	}
	m, err := scrapeMetrics(ctx, s.hc, s.c.Metrics)
	if err != nil {
		s.errs["metrics: "+err.Error()]++
		return
	}
	g, ok1 := m["magpie_goroutines"]
	h, ok2 := m["magpie_heap_inuse_bytes"]
	p99, ok3 := m["magpie_gc_pause_p99_seconds"]
	pmax, ok4 := m["magpie_gc_pause_max_seconds"]
	if !ok1 || !ok2 || !ok3 || !ok4 {
		s.errs["metrics: magpie_goroutines, magpie_heap_inuse_bytes or magpie_gc_pause_{p99,max}_seconds missing (server too old?)"]++
		return
	}
	smp.MetricsMeasured = true
	smp.Goroutines, smp.HeapInuseMiB = int(g), h/(1<<20)
	smp.GCPauseP99Ms, smp.GCPauseMaxMs = p99*1e3, pmax*1e3
}
