package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// W4Result is the outcome of the transient-push workload: signed
// POST /v1/push requests (transient) fanned out to online connections.
type W4Result struct {
	Target      string  `json:"target"` // everyone | users
	Conns       int     `json:"connections"`
	Connected   int     `json:"connected"`
	Users       int     `json:"users"`
	Batch       int     `json:"users_per_push"`
	Concurrency int     `json:"pushes_in_flight"`
	Rate        float64 `json:"rate_per_s"` // offered push requests/s; 0: closed loop
	Skipped     int64   `json:"skipped"`    // open loop: pushes not sent because all workers were busy

	WindowS      float64 `json:"window_s"`
	Pushes       int64   `json:"pushes_ok"`         // requests answered 200 in the window
	PushRate     float64 `json:"pushes_per_s"`      // requests/s in the window
	Received     int64   `json:"deliveries"`        // notifications read by the connections in the window
	DeliveryRate float64 `json:"deliveries_per_s"`  // the headline figure
	PushFailed   int64   `json:"pushes_failed"`     // whole run
	Claimed      int64   `json:"claimed_delivered"` // sum of the server's "delivered", whole run
	ReceivedAll  int64   `json:"received_total"`    // whole run, after settling
	Missing      int64   `json:"missing"`           // claimed - received (connections of others count in claimed for "everyone")
	Dropped      int64   `json:"connections_dropped"`

	Latency     Summary `json:"push_to_delivery_latency"` // sampled 1 in 16 per connection
	PushLatency Summary `json:"push_request_latency"`

	ServerMeasured bool    `json:"server_measured"`
	ServerCores    float64 `json:"server_cpu_cores"`
	GenCores       float64 `json:"generator_cpu_cores"`

	Errors []string `json:"errors,omitempty"`
}

type w4Opts struct {
	conns, users, batch, conc int
	rate                      float64
	target, key               string
}

func w4Flags(fs *flag.FlagSet, smoke *bool) func(context.Context, *common) (report, error) {
	var o w4Opts
	fs.IntVar(&o.conns, "conns", 2000, "online connections that receive the pushes")
	fs.IntVar(&o.users, "users", 100, "users the connections log in as (connections share their tokens)")
	fs.StringVar(&o.target, "target", "everyone", `"everyone" (one push reaches every connection) or "users" (to_users with --batch names)`)
	fs.IntVar(&o.batch, "batch", 100, `users named per push with --target users`)
	fs.IntVar(&o.conc, "concurrency", 4, "push requests in flight (at most)")
	fs.Float64Var(&o.rate, "rate", 0, "push requests per second, open loop (0: closed loop, as fast as --concurrency allows)")
	fs.StringVar(&o.key, "push-key", "", "KEYID:SECRET, one of the server's --push-keys (required)")
	fs.Duration("duration", 20*time.Second, "measurement window")
	fs.Duration("warmup", 3*time.Second, "pushing before the window starts")
	return func(ctx context.Context, c *common) (report, error) {
		if c.Smoke {
			smokeDefault(c, "conns", &o.conns, 100)
			smokeDefault(c, "users", &o.users, 10)
			smokeDefault(c, "duration", &c.Duration, 3*time.Second)
			smokeDefault(c, "warmup", &c.Warmup, time.Second)
		}
		return runW4(ctx, c, o)
	}
}

// w4Conn is one receiving connection; its reader goroutine owns hist.
type w4Conn struct {
	rc       *rawConn
	received atomic.Int64
	hist     Histogram
	n        int
}

func runW4(ctx context.Context, c *common, o w4Opts) (report, error) {
	keyID, secret, ok := strings.Cut(o.key, ":")
	if !ok || keyID == "" || secret == "" {
		return nil, fmt.Errorf("bench w4: --push-key KEYID:SECRET is required (the server must run with it in --push-keys)")
	}
	if o.target != "everyone" && o.target != "users" {
		return nil, fmt.Errorf("bench w4: --target must be everyone or users")
	}
	if o.conns < 1 || o.users < 1 || o.conc < 1 || o.batch < 1 {
		return nil, fmt.Errorf("bench w4: --conns, --users, --batch and --concurrency must be positive")
	}
	o.users = min(o.users, o.conns)
	o.batch = min(o.batch, o.users, 1000)
	res := &W4Result{Target: o.target, Conns: o.conns, Users: o.users, Batch: o.batch, Concurrency: o.conc, Rate: o.rate}
	if o.target == "everyone" {
		res.Batch = 0
	}

	hc := c.httpClient(30*time.Second, o.conc*2)
	names, logins, err := registerAndLogin(ctx, c, hc, "w4", o.users)
	if err != nil {
		return nil, err
	}

	var (
		conns     = make([]*w4Conn, o.conns)
		closing   atomic.Bool
		measuring atomic.Bool
		dropped   atomic.Int64
		readers   sync.WaitGroup
		errMu     sync.Mutex
		errCounts = map[string]int{}
	)
	noteErr := func(msg string) {
		errMu.Lock()
		errCounts[msg]++
		errMu.Unlock()
	}
	readLoop := func(wc *w4Conn) {
		defer readers.Done()
		for {
			env, err := wc.rc.read()
			if err != nil {
				if !closing.Load() {
					dropped.Add(1)
					noteErr("dropped: " + err.Error())
				}
				return
			}
			m := env.GetMessage()
			if m == nil || !m.Transient || m.Kind != magpiepb.MessageKind_MESSAGE_KIND_NOTIFICATION || !strings.HasPrefix(m.Text, "w4 ") {
				continue
			}
			wc.received.Add(1)
			if wc.n++; wc.n%16 == 0 && measuring.Load() {
				if ns, err := strconv.ParseInt(m.Text[3:], 10, 64); err == nil {
					wc.hist.Record(time.Now().UnixNano() - ns)
				}
			}
		}
	}
	defer func() {
		closing.Store(true)
		for _, wc := range conns {
			if wc != nil {
				wc.rc.close()
			}
		}
		readers.Wait()
	}()
	c.logf("w4: opening %d %s connections", o.conns, c.Transport)
	err = openRawConns(ctx, c, logins, o.conns, 100, nil, func(stage string, err error) {
		noteErr(stage + ": " + err.Error())
	}, func(i int, rc *rawConn, _, _ time.Duration) {
		conns[i] = &w4Conn{rc: rc}
		readers.Add(1)
		go readLoop(conns[i])
	})
	if err != nil {
		return nil, err
	}
	raw := make([]*rawConn, 0, o.conns)
	for _, wc := range conns {
		if wc != nil {
			raw = append(raw, wc.rc)
		}
	}
	res.Connected = len(raw)
	if res.Connected == 0 {
		return nil, fmt.Errorf("bench w4: no connection could be opened")
	}
	pingCtx, stopPing := context.WithCancel(ctx)
	defer stopPing()
	go pingLoop(pingCtx, raw, 20*time.Second, new(atomic.Int64))
	// Presence is asynchronous: wait until one push reaches everyone.
	sleepCtx(ctx, 500*time.Millisecond)

	var (
		pushesOK, pushesFailed, claimed atomic.Int64
		pushHists                       = make([]Histogram, o.conc)
		pushing                         sync.WaitGroup
		next                            atomic.Int64
	)
	sendCtx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	var tokens chan struct{} // open loop: one token per push due
	var skipped atomic.Int64
	if o.rate > 0 {
		tokens = make(chan struct{}, o.conc)
		pushing.Go(func() { pace(sendCtx, o.rate, tokens, &skipped) })
	}
	for w := range o.conc {
		pushing.Go(func() {
			for sendCtx.Err() == nil {
				if tokens != nil {
					select {
					case <-tokens:
					case <-sendCtx.Done():
						return
					}
				}
				body := w4Body(o, names, &next)
				t0 := time.Now()
				// The parent ctx, not sendCtx: a request the server may
				// already have fanned out must finish and be counted.
				n, err := signedPushRequest(ctx, hc, c.Server, keyID, []byte(secret), body)
				if err != nil {
					if sendCtx.Err() == nil {
						pushesFailed.Add(1)
						noteErr("push: " + err.Error())
						sleepCtx(sendCtx, 10*time.Millisecond)
					}
					continue
				}
				if measuring.Load() {
					pushHists[w].RecordDuration(time.Since(t0))
				}
				pushesOK.Add(1)
				claimed.Add(int64(n))
			}
		})
	}
	received := func() (n int64) {
		for _, wc := range conns {
			if wc != nil {
				n += wc.received.Load()
			}
		}
		return n
	}

	c.logf("w4: pushing to %s with %d in flight: warm-up %v, window %v", o.target, o.conc, c.Warmup, c.Duration)
	if !sleepCtx(ctx, c.Warmup) {
		return nil, ctx.Err()
	}
	measuring.Store(true)
	srv0, gen0 := readProc(c.PID), readProc(selfPID)
	r0, p0, t0 := received(), pushesOK.Load(), time.Now()
	ok = sleepCtx(ctx, c.Duration)
	r1, p1, t1 := received(), pushesOK.Load(), time.Now()
	srv1, gen1 := readProc(c.PID), readProc(selfPID)
	measuring.Store(false)
	stopSending()
	pushing.Wait()
	if !ok {
		return nil, ctx.Err()
	}
	// Settle: wait until the receivers stop counting for 1 s (at most 15 s).
	for last, still, deadline := int64(-1), 0, time.Now().Add(15*time.Second); still < 5 && time.Now().Before(deadline); {
		if n := received(); n == last {
			still++
		} else {
			last, still = n, 0
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}

	res.WindowS = t1.Sub(t0).Seconds()
	res.Pushes = p1 - p0
	res.PushRate = float64(res.Pushes) / res.WindowS
	res.Received = r1 - r0
	res.DeliveryRate = float64(res.Received) / res.WindowS
	res.PushFailed = pushesFailed.Load()
	res.Skipped = skipped.Load()
	res.Claimed = claimed.Load()
	res.ReceivedAll = received()
	res.Missing = res.Claimed - res.ReceivedAll
	res.Dropped = dropped.Load()
	var ph Histogram
	for i := range pushHists {
		ph.Merge(&pushHists[i])
	}
	res.PushLatency = ph.Summarize()
	if d := deltaCPU(srv0, srv1); d.Valid {
		res.ServerMeasured, res.ServerCores = true, d.Cores
	}
	res.GenCores = deltaCPU(gen0, gen1).Cores

	// Readers own their histograms: close first, then merge.
	closing.Store(true)
	for _, wc := range conns {
		if wc != nil {
			wc.rc.close()
		}
	}
	readers.Wait()
	var lat Histogram
	for _, wc := range conns {
		if wc != nil {
			lat.Merge(&wc.hist)
		}
	}
	res.Latency = lat.Summarize()
	errMu.Lock()
	res.Errors = appendErrorCounts(res.Errors, errCounts)
	errMu.Unlock()
	return res, nil
}

// pace hands out rate tokens per second in 5 ms slices; a token that
// finds every worker busy is skipped and counted, so the offered load
// stays what was asked for (open loop).
func pace(ctx context.Context, rate float64, tokens chan<- struct{}, skipped *atomic.Int64) {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	start, sent := time.Now(), int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int64(now.Sub(start).Seconds() * rate)
			for ; sent < due; sent++ {
				select {
				case tokens <- struct{}{}:
				default:
					skipped.Add(1)
				}
			}
		}
	}
}

// w4Body is one push: the send time in the text, so receivers can tell
// the latency.
func w4Body(o w4Opts, names []string, next *atomic.Int64) []byte {
	text := "w4 " + strconv.FormatInt(time.Now().UnixNano(), 10)
	if o.target == "everyone" {
		b, _ := json.Marshal(map[string]any{"everyone": true, "text": text, "transient": true, "from": "bench"})
		return b
	}
	start := int(next.Add(int64(o.batch)) - int64(o.batch))
	to := make([]string, o.batch)
	for i := range to {
		to[i] = names[(start+i)%len(names)]
	}
	b, _ := json.Marshal(map[string]any{"to_users": to, "text": text, "transient": true, "from": "bench"})
	return b
}

// signedPushRequest sends one signed POST /v1/push and returns the
// server's "delivered".
func signedPushRequest(ctx context.Context, hc *http.Client, server, keyID string, secret, body []byte) (int, error) {
	var nb [16]byte
	_, _ = rand.Read(nb[:])
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), hex.EncodeToString(nb[:])
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/v1/push", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(push.HeaderKey, keyID)
	req.Header.Set(push.HeaderTimestamp, ts)
	req.Header.Set(push.HeaderNonce, nonce)
	req.Header.Set(push.HeaderSignature, push.Sign(secret, http.MethodPost, "/v1/push", ts, nonce, body))
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(data))
	}
	var out struct {
		Delivered int `json:"delivered"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, err
	}
	return out.Delivered, nil
}

func (r *W4Result) problems() []string {
	var p []string
	if r.Connected < r.Conns {
		p = append(p, fmt.Sprintf("%d of %d connections failed", r.Conns-r.Connected, r.Conns))
	}
	if r.Skipped > 0 {
		p = append(p, fmt.Sprintf("%d pushes skipped (generator behind the rate)", r.Skipped))
	}
	if r.PushFailed > 0 {
		p = append(p, fmt.Sprintf("%d pushes failed", r.PushFailed))
	}
	if r.Dropped > 0 {
		p = append(p, fmt.Sprintf("%d connections dropped", r.Dropped))
	}
	if r.Received == 0 {
		p = append(p, "nothing delivered")
	}
	if r.Target == "users" && r.Missing != 0 {
		p = append(p, fmt.Sprintf("%d deliveries claimed by the server but not received", r.Missing))
	}
	return p
}

func (r *W4Result) table(w io.Writer) {
	tw := newTable(w)
	target := r.Target
	if r.Target == "users" {
		target = fmt.Sprintf("users (%d per push)", r.Batch)
	}
	tw.row("W4 transient push", target)
	tw.row("connections (target / connected / dropped) / users", fmt.Sprintf("%d / %d / %d / %d", r.Conns, r.Connected, r.Dropped, r.Users))
	load := "closed loop"
	if r.Rate > 0 {
		load = fmt.Sprintf("open loop %.0f pushes/s (%d skipped: all workers busy)", r.Rate, r.Skipped)
	}
	tw.row("window / pushes in flight / load", fmt.Sprintf("%.1f s / %d / %s", r.WindowS, r.Concurrency, load))
	tw.row("push requests ok / failed", fmt.Sprintf("%d (%.0f/s) / %d", r.Pushes, r.PushRate, r.PushFailed))
	tw.row("deliveries received in window", fmt.Sprintf("%d (%.0f/s)", r.Received, r.DeliveryRate))
	tw.row("whole run: claimed / received / missing", fmt.Sprintf("%d / %d / %d", r.Claimed, r.ReceivedAll, r.Missing))
	tw.row("push → delivery p50/p99/p99.9/max", fmt.Sprintf("%.2f / %.2f / %.2f / %.2f ms (%d samples)", r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Latency.Max, r.Latency.Count))
	tw.row("push request p50/p99", fmt.Sprintf("%.2f / %.2f ms", r.PushLatency.P50, r.PushLatency.P99))
	if r.ServerMeasured {
		tw.row("server CPU", fmt.Sprintf("%.2f cores", r.ServerCores))
	} else {
		tw.row("server CPU", "not measured (no --pid)")
	}
	tw.row("generator CPU", fmt.Sprintf("%.2f cores", r.GenCores))
	for _, e := range r.Errors {
		tw.row("error", e)
	}
	tw.flush()
}
