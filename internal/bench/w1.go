package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/proto/magpiepb"
)

// W1Result is the outcome of the idle-connections workload.
type W1Result struct {
	Transport   string  `json:"transport"`
	Target      int     `json:"target_connections"`
	Users       int     `json:"users"`
	Sources     int     `json:"source_addresses"`
	Connected   int     `json:"connected"`
	Failed      int     `json:"connect_failures"`
	Dropped     int64   `json:"dropped_while_idle"`
	ConnectSecs float64 `json:"connect_seconds"`
	ConnectRate float64 `json:"connect_rate_per_s"`
	// Connect+auth latency of one connection (dial → auth_ok).
	ConnectLatency Summary `json:"connect_latency"`

	Heartbeat   float64 `json:"ping_interval_s"`
	Pings       int64   `json:"pings_sent"`
	Pongs       int64   `json:"pongs_received"`
	IdleSeconds float64 `json:"idle_window_s"`

	// Server figures; valid only with --pid.
	ServerMeasured      bool    `json:"server_measured"`
	RSSBeforeMiB        float64 `json:"server_rss_before_mib"`
	RSSConnectedMiB     float64 `json:"server_rss_connected_mib"`
	RSSAfterMiB         float64 `json:"server_rss_after_mib"`
	RSSPerConnKB        float64 `json:"server_rss_per_conn_kb"`
	IdleCPUUsPerConnSec float64 `json:"server_idle_cpu_us_per_conn_s"`
	ServerIdleCores     float64 `json:"server_idle_cpu_cores"`
	ServerConnectCores  float64 `json:"server_connect_cpu_cores"`
	GenConnectCores     float64 `json:"generator_connect_cpu_cores"`
	GenIdleCores        float64 `json:"generator_idle_cpu_cores"`
	// Live memory (valid with --metrics): the server's Go heap and stacks
	// in use after a forced GC, before connecting and at the end of the
	// idle window; the difference per connection is what a connection
	// holds, free of garbage and of pages RSS counts but Go does not use.
	LiveMeasured    bool    `json:"server_live_measured"`
	LiveBeforeMiB   float64 `json:"server_live_before_mib"`
	LiveAfterMiB    float64 `json:"server_live_after_mib"`
	HeapPerConnKB   float64 `json:"server_heap_per_conn_kb"`
	StacksPerConnKB float64 `json:"server_stacks_per_conn_kb"`
	LivePerConnKB   float64 `json:"server_live_per_conn_kb"`
	// Kernel memory: whole-machine slab growth per connection, both socket
	// ends of the loopback connection (the server's and the generator's).
	KernelSlabPerConnKB float64 `json:"kernel_slab_per_conn_kb_both_ends"`

	Errors []string `json:"errors,omitempty"`
}

type w1Opts struct {
	conns, users, conc int
	ping               time.Duration
	tokens             string
}

func w1Flags(fs *flag.FlagSet, smoke *bool) func(context.Context, *common) (report, error) {
	var o w1Opts
	w1ConnFlags(fs, &o)
	fs.Duration("duration", 30*time.Second, "idle measurement window")
	fs.Duration("warmup", 5*time.Second, "settle time after connecting, before measuring")
	return func(ctx context.Context, c *common) (report, error) {
		if c.Smoke {
			smokeDefault(c, "conns", &o.conns, 200)
			smokeDefault(c, "users", &o.users, 4)
			smokeDefault(c, "duration", &c.Duration, 5*time.Second)
			smokeDefault(c, "warmup", &c.Warmup, time.Second)
		}
		return runW1(ctx, c, o)
	}
}

// w1ConnFlags registers the flags of the idle connections (W1, W7).
func w1ConnFlags(fs *flag.FlagSet, o *w1Opts) {
	fs.IntVar(&o.conns, "conns", 10000, "connections to open (one process holds at most ~19,990: 20,000 fds)")
	fs.IntVar(&o.users, "users", 100, "users to log in; their tokens are shared by the connections")
	fs.IntVar(&o.conc, "concurrency", 200, "connection attempts in flight")
	fs.StringVar(&o.tokens, "tokens", "", "file of logins: reused if it exists, else written after logging in (so the server can be restarted with the same --data before measuring, keeping Argon2id's memory out of the RSS baseline)")
	fs.DurationVar(&o.ping, "ping", 0, "ping interval (0: the server's heartbeat_seconds)")
}

func runW1(ctx context.Context, c *common, o w1Opts) (report, error) {
	if o.conns < 1 || o.users < 1 {
		return nil, fmt.Errorf("bench w1: --conns and --users must be positive")
	}
	o.users = min(o.users, o.conns)
	res := &W1Result{Transport: c.Transport, Target: o.conns, Users: o.users, Sources: max(1, len(c.Sources))}

	logins, err := w1Logins(ctx, c, o, "w1")
	if err != nil {
		return nil, err
	}
	res.Users = len(logins)
	if c.PID > 0 && o.tokens != "" {
		// Let the server finish whatever login left behind.
		sleepCtx(ctx, 2*time.Second)
	}

	idle := newIdleConns(o.conns)
	defer idle.close()

	hc := c.httpClient(15*time.Second, 0)
	var live0 liveMem
	var liveErr error
	if c.Metrics != "" {
		live0, liveErr = readLiveMem(ctx, hc, c.Metrics)
	}
	self := selfPID
	srv0, gen0, slab0 := readProc(c.PID), readProc(self), slabBytes()
	c.logf("w1: opening %d %s connections (%d in flight, %d source addresses)", o.conns, c.Transport, o.conc, res.Sources)
	start := time.Now()
	err = idle.open(ctx, c, logins, o.conc)
	elapsed := time.Since(start)
	srv1, gen1 := readProc(c.PID), readProc(self)
	if err != nil {
		return nil, err
	}
	res.Failed = int(idle.failed.Load())
	res.Connected = o.conns - res.Failed
	res.ConnectSecs = elapsed.Seconds()
	res.ConnectRate = float64(res.Connected) / elapsed.Seconds()
	res.ConnectLatency = idle.connectLat.Summarize()
	c.logf("w1: %d connected in %.2fs (%.0f/s), %d failed", res.Connected, res.ConnectSecs, res.ConnectRate, res.Failed)

	interval := idle.startPings(ctx, o.ping)
	res.Heartbeat = interval.Seconds()

	c.logf("w1: warm-up %v, then idle window %v (ping every %v)", c.Warmup, c.Duration, interval)
	if !sleepCtx(ctx, c.Warmup) {
		return nil, ctx.Err()
	}
	srv2, gen2 := readProc(c.PID), readProc(self)
	ok := sleepCtx(ctx, c.Duration)
	srv3, gen3, slab3 := readProc(c.PID), readProc(self), slabBytes()
	if c.Metrics != "" && liveErr == nil && ok {
		var live3 liveMem
		if live3, liveErr = readLiveMem(ctx, hc, c.Metrics); liveErr == nil && res.Connected > 0 {
			res.LiveMeasured = true
			res.LiveBeforeMiB = (live0.Heap + live0.Stacks) / (1 << 20)
			res.LiveAfterMiB = (live3.Heap + live3.Stacks) / (1 << 20)
			per := func(a, b float64) float64 { return (b - a) / 1024 / float64(res.Connected) }
			res.HeapPerConnKB = per(live0.Heap, live3.Heap)
			res.StacksPerConnKB = per(live0.Stacks, live3.Stacks)
			res.LivePerConnKB = res.HeapPerConnKB + res.StacksPerConnKB
		}
	}
	if liveErr != nil {
		res.Errors = append(res.Errors, "live memory: "+liveErr.Error())
	}
	idle.stopPings()
	if !ok {
		return nil, ctx.Err()
	}
	res.IdleSeconds = srv3.At.Sub(srv2.At).Seconds()
	res.Pings, res.Pongs, res.Dropped = idle.pings.Load(), idle.pongs.Load(), idle.dropped.Load()
	res.GenConnectCores = deltaCPU(gen0, gen1).Cores
	res.GenIdleCores = deltaCPU(gen2, gen3).Cores
	if srv0.Valid && srv3.Valid && res.Connected > 0 {
		res.ServerMeasured = true
		res.RSSBeforeMiB = float64(srv0.RSS) / (1 << 20)
		res.RSSConnectedMiB = float64(srv1.RSS) / (1 << 20)
		res.RSSAfterMiB = float64(srv3.RSS) / (1 << 20)
		res.RSSPerConnKB = float64(srv3.RSS-srv0.RSS) / 1024 / float64(res.Connected)
		cpu := deltaCPU(srv2, srv3)
		res.ServerIdleCores = cpu.Cores
		res.IdleCPUUsPerConnSec = float64(cpu.CPU.Microseconds()) / float64(res.Connected) / res.IdleSeconds
		res.ServerConnectCores = deltaCPU(srv0, srv1).Cores
	} else if c.PID > 0 {
		res.Errors = append(res.Errors, "reading /proc of --pid failed: "+srv0.errMsg+srv3.errMsg)
	}
	if slab0 >= 0 && slab3 >= 0 && res.Connected > 0 {
		res.KernelSlabPerConnKB = float64(slab3-slab0) / 1024 / float64(res.Connected)
	}
	res.Errors = idle.errors(res.Errors)
	return res, nil
}

func sourceFor(c *common, i int) net.IP {
	if len(c.Sources) == 0 {
		return nil
	}
	return c.Sources[i%len(c.Sources)]
}

// pingLoop pings every connection once per interval, spread evenly over
// the interval in 20 ms slices: one goroutine, no timer per connection.
// It is the only writer of the connections after authentication.
func pingLoop(ctx context.Context, conns []*rawConn, interval time.Duration, pings *atomic.Int64) {
	const slice = 20 * time.Millisecond
	slices := max(1, int64(interval/slice))
	t := time.NewTicker(interval / time.Duration(slices))
	defer t.Stop()
	n := int64(len(conns))
	var tick, done int64 // done: pings written so far, over all rounds
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tick++
		// After tick t of a round, t/slices of the connections are pinged.
		round, in := (tick-1)/slices, (tick-1)%slices+1
		want := round*n + in*n/slices
		now := time.Now().UnixMilli()
		for ; done < want; done++ {
			rc := conns[done%n]
			if rc == nil {
				continue
			}
			if rc.write(&magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: now}}}) == nil {
				pings.Add(1)
			}
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *W1Result) problems() []string {
	var p []string
	if r.Failed > 0 {
		p = append(p, fmt.Sprintf("%d connections failed", r.Failed))
	}
	if r.Dropped > 0 {
		p = append(p, fmt.Sprintf("%d connections dropped while idle", r.Dropped))
	}
	return p
}

func (r *W1Result) table(w io.Writer) {
	tw := newTable(w)
	tw.row("W1 idle connections", r.Transport)
	tw.row("connections (target / connected / failed / dropped idle)", fmt.Sprintf("%d / %d / %d / %d", r.Target, r.Connected, r.Failed, r.Dropped))
	tw.row("users (tokens shared) / source addresses", fmt.Sprintf("%d / %d", r.Users, r.Sources))
	tw.row("connect+auth rate", fmt.Sprintf("%.0f conn/s (%.2f s)", r.ConnectRate, r.ConnectSecs))
	tw.row("connect+auth latency p50/p99/max", fmt.Sprintf("%.2f / %.2f / %.2f ms", r.ConnectLatency.P50, r.ConnectLatency.P99, r.ConnectLatency.Max))
	tw.row("idle window / ping interval", fmt.Sprintf("%.1f s / %.0f s (%d pings, %d pongs)", r.IdleSeconds, r.Heartbeat, r.Pings, r.Pongs))
	if r.ServerMeasured {
		tw.row("server RSS before → connected → end of idle", fmt.Sprintf("%.1f → %.1f → %.1f MiB", r.RSSBeforeMiB, r.RSSConnectedMiB, r.RSSAfterMiB))
		tw.row("server RSS per connection (user space, end of idle)", fmt.Sprintf("%.2f KB", r.RSSPerConnKB))
		if r.LiveMeasured {
			tw.row("server live heap + stacks (after GC) before → end of idle", fmt.Sprintf("%.1f → %.1f MiB", r.LiveBeforeMiB, r.LiveAfterMiB))
			tw.row("server live memory per connection: heap + stacks", fmt.Sprintf("%.2f KB = %.2f + %.2f", r.LivePerConnKB, r.HeapPerConnKB, r.StacksPerConnKB))
		}
		tw.row("server idle CPU per connection", fmt.Sprintf("%.3f µs/s (%.3f cores total)", r.IdleCPUUsPerConnSec, r.ServerIdleCores))
		tw.row("server CPU while connecting", fmt.Sprintf("%.2f cores", r.ServerConnectCores))
	} else {
		tw.row("server RSS / CPU", "not measured (no --pid)")
	}
	tw.row("generator CPU connecting / idle", fmt.Sprintf("%.2f / %.3f cores", r.GenConnectCores, r.GenIdleCores))
	tw.row("kernel slab per connection (both ends)", fmt.Sprintf("%.2f KB", r.KernelSlabPerConnKB))
	for _, e := range r.Errors {
		tw.row("error", e)
	}
	tw.flush()
}

// w1Logins registers and logs in the users, or reads their logins from
// --tokens if that file exists (writing it otherwise); tag ("w1", "w7")
// names the users, their device and the errors.
func w1Logins(ctx context.Context, c *common, o w1Opts, tag string) ([]login, error) {
	if o.tokens != "" {
		var logins []login
		if found, err := readTokens(o.tokens, &logins); found {
			if err != nil || len(logins) == 0 {
				return nil, fmt.Errorf("bench %s: --tokens %s: not a list of logins (%v)", tag, o.tokens, err)
			}
			c.logf("%s: reusing %d logins from %s", tag, len(logins), o.tokens)
			return logins, nil
		}
	}
	_, logins, err := registerAndLogin(ctx, c, c.httpClient(30*time.Second, 0), tag, o.users)
	if err != nil {
		return nil, err
	}
	if o.tokens != "" {
		if err := writeTokens(o.tokens, logins); err != nil {
			return nil, fmt.Errorf("bench %s: --tokens: %w", tag, err)
		}
	}
	return logins, nil
}
