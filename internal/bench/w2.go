package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/client"
)

// W2Result is the outcome of the 1:1 durable-messages workload.
type W2Result struct {
	// Driver is how the generator talks to the server: "sdk" (the Go SDK,
	// one client per user) or "raw" (pre-encoded frames on raw
	// connections, w2raw.go).
	Driver    string       `json:"driver"`
	Transport string       `json:"transport"`
	Pairs     int          `json:"pairs"`
	TextBytes int          `json:"text_bytes"`
	ConnLimit float64      `json:"assumed_per_connection_limit_per_s"`
	Steps     []StepResult `json:"steps"`
	Errors    []string     `json:"errors,omitempty"`
}

// StepResult is one rate step (open loop) or the closed-loop run.
type StepResult struct {
	Mode          string  `json:"mode"` // "open" or "closed"
	TargetRate    float64 `json:"target_rate_per_s,omitempty"`
	InFlight      int     `json:"in_flight_per_sender,omitempty"`
	PerSenderRate float64 `json:"per_sender_rate_per_s,omitempty"`
	Note          string  `json:"note,omitempty"`
	WindowSeconds float64 `json:"window_s"`
	// The window's wall-clock edges, to match samples taken outside the
	// bench (e.g. PostgreSQL's backends' CPU).
	WindowStartMs int64   `json:"window_start_unix_ms,omitempty"`
	WindowEndMs   int64   `json:"window_end_unix_ms,omitempty"`
	AckedRate     float64 `json:"acked_per_s"`
	DeliveredRate float64 `json:"delivered_per_s"`
	// Latencies of messages intended within the window, from the intended
	// send time (open loop) or the actual send time (closed loop).
	Ack     Summary `json:"ack_latency"`
	Deliver Summary `json:"send_to_deliver_latency"`
	// Counts over the whole step (warm-up included), after the settle.
	Sent       uint64 `json:"sent"`
	Acked      uint64 `json:"acked"`
	Failed     uint64 `json:"failed"`
	Delivered  uint64 `json:"delivered"`
	Lost       uint64 `json:"lost"` // after the final settle and sync of the run
	LostAtStep uint64 `json:"missing_at_step_end"`
	Duplicated uint64 `json:"duplicated"`
	Reordered  uint64 `json:"reordered"`
	Unsettled  uint64 `json:"sends_unfinished_at_settle"`
	// Skipped: scheduled sends not made because --max-outstanding sends
	// were already waiting for their ACK (the server fell behind).
	Skipped uint64 `json:"skipped_generator_backlog"`

	ServerMeasured    bool    `json:"server_measured"`
	ServerCPUUsPerMsg float64 `json:"server_cpu_us_per_delivered_msg"`
	ServerCores       float64 `json:"server_cpu_cores"`
	ServerRSSMiB      float64 `json:"server_rss_mib"`
	GeneratorCores    float64 `json:"generator_cpu_cores"`
	// GeneratorCPUUsPerMsg is the generator's CPU (senders and receivers
	// together) per message delivered in the window.
	GeneratorCPUUsPerMsg float64 `json:"generator_cpu_us_per_delivered_msg"`
	// MissingAtSettle: ACKed messages not delivered by the settle deadline
	// (the SDK driver: not even by the SDK's own gap fills; the raw
	// driver: not pushed live). Recovered: of those, the ones the
	// receiver's sync (SDK) or history request (raw) then brought, at the
	// step's end or in the final check; the rest are Lost.
	MissingAtSettle uint64   `json:"missing_at_settle"`
	Recovered       uint64   `json:"recovered_by_sync"`
	Errors          []string `json:"errors,omitempty"`
}

type w2Opts struct {
	pairs, size, inflight, schedulers int
	rates                             []float64
	closed                            bool
	settle                            time.Duration
	connLimit                         float64
	maxOutstanding                    int64
	driver                            string // "sdk" (default) or "raw"
	// tamper, if set (tests), makes the raw driver's receivers ignore a
	// delivery of seq to pair i: live pushes, and with history also the
	// history pages of the final check (a message the server "lost").
	tamper func(pair int, seq uint64, history bool) bool
}

func w2Flags(fs *flag.FlagSet, smoke *bool) func(context.Context, *common) (report, error) {
	var o w2Opts
	var rates string
	w2SendFlags(fs, &o)
	fs.StringVar(&rates, "rates", "10000,25000,50000", "open-loop steps in msgs/s, comma-separated (empty: none)")
	fs.BoolVar(&o.closed, "closed", false, "also run a closed-loop maximum-throughput step")
	fs.StringVar(&o.driver, "driver", "sdk", "sdk: one Go SDK client per user; raw: pre-encoded frames on raw connections, a minimal decoder, so the generator costs less per message (see docs/benchmarks.md)")
	fs.IntVar(&o.inflight, "inflight", 16, "closed loop: sends in flight per sender (the server allows 64 unanswered requests)")
	fs.Duration("duration", 30*time.Second, "measurement window of each step")
	fs.Duration("warmup", 5*time.Second, "warm-up of each step (same rate, not measured)")
	return func(ctx context.Context, c *common) (report, error) {
		if c.Smoke {
			smokeDefault(c, "pairs", &o.pairs, 20)
			smokeDefault(c, "rates", &rates, "500")
			smokeDefault(c, "duration", &c.Duration, 5*time.Second)
			smokeDefault(c, "warmup", &c.Warmup, time.Second)
		}
		var err error
		if o.rates, err = parseRates(rates, "bench w2: --rates"); err != nil {
			return nil, err
		}
		if o.driver != "sdk" && o.driver != "raw" {
			return nil, fmt.Errorf("bench w2: --driver must be sdk or raw, not %q", o.driver)
		}
		if len(o.rates) == 0 && !o.closed {
			return nil, errors.New("bench w2: nothing to run: give --rates or --closed")
		}
		return runW2(ctx, c, o)
	}
}

// w2SendFlags registers the flags of the pairs and the open-loop sender
// (W2, W7).
func w2SendFlags(fs *flag.FlagSet, o *w2Opts) {
	fs.IntVar(&o.pairs, "pairs", 200, "active sender→receiver pairs (2 users, 2 SDK clients each pair)")
	fs.IntVar(&o.size, "size", 64, "message text bytes")
	fs.IntVar(&o.schedulers, "schedulers", 4, "open loop: scheduler goroutines")
	fs.DurationVar(&o.settle, "settle", 20*time.Second, "after a step, wait this long for ACKs and deliveries before counting losses")
	fs.Int64Var(&o.maxOutstanding, "max-outstanding", 50000, "open loop: unACKed sends the generator keeps at most; beyond, scheduled sends are skipped and counted (an overloaded server would otherwise grow the generator without bound)")
	fs.Float64Var(&o.connLimit, "conn-rate", 500, "the server's per-connection request limit (its --conn-rate), for the report")
}

// pair is one sender→receiver conversation. mu guards everything below it.
type pair struct {
	sender, receiver *client.Client // SDK driver
	raw              *rawPair       // raw driver
	to               string         // the receiver's username
	from             string         // the sender's

	mu         sync.Mutex
	ledger     convLedger
	acked      []uint64   // seqs ACKed in the current step
	unsettled  [][]uint64 // per step: ACKed seqs missing at the step's end
	ackHist    Histogram
	deliverHst Histogram
}

// stepState is shared by the senders, receivers and the step's driver.
type stepState struct {
	sent, acked, failed, delivered atomic.Uint64
	skipped, outstanding           atomic.Int64
	errMu                          sync.Mutex
	errs                           map[string]int
}

func (s *stepState) noteErr(err error) {
	s.errMu.Lock()
	s.errs[err.Error()]++
	s.errMu.Unlock()
}

// w2 holds a run's clients and counters.
type w2 struct {
	c     *common
	o     w2Opts
	drv   w2Driver
	pairs []*pair
	steps []*stepState
	cur   atomic.Int64 // index of the running step; deliveries of others are not timed
	// Totals across steps, snapshot at the window's edges.
	ackedTotal, deliveredTotal atomic.Uint64
	pad                        string
	// fail ends the run with a cause (a raw connection dropped); nil for
	// W7, whose connections are the SDK's.
	fail   func(error)
	tamper func(pair int, seq uint64, history bool) bool // o.tamper
	// monitor, if set, runs beside each step's senders with the step's
	// measurement window and must return by its end (W7 samples in it).
	monitor func(ctx context.Context, measureFrom, end time.Time)
}

// newW2 prepares a run of nsteps steps; setup connects its clients.
func newW2(c *common, o w2Opts, nsteps int) *w2 {
	b := &w2{c: c, o: o, pad: strings.Repeat("x", max(0, o.size-32)), tamper: o.tamper}
	for range nsteps {
		b.steps = append(b.steps, &stepState{errs: map[string]int{}})
	}
	b.cur.Store(-1)
	if o.driver == "raw" {
		b.drv = &rawDriver{b: b}
	} else {
		b.drv = &sdkDriver{b: b, wgs: make([]sync.WaitGroup, nsteps)}
	}
	return b
}

// w2Driver is how W2 drives the server: through the SDK, or raw
// connections with pre-encoded frames (w2raw.go). Both keep the same
// books: stepState's counters, pair.acked, the ledgers and histograms.
type w2Driver interface {
	// connect opens the pairs' connections; the users exist.
	connect(ctx context.Context) error
	// sendOpen sends one open-loop message and returns without waiting
	// for its ACK; st.outstanding counts it until it is ACKed or failed.
	sendOpen(ctx context.Context, st *stepState, p *pair, step int, measured bool, intended time.Time)
	// closedLoop starts the closed loop's senders, inflight sends per
	// sender until end, as goroutines of drivers.
	closedLoop(ctx context.Context, drivers *sync.WaitGroup, st *stepState, step, inflight int, measureFrom, end time.Time)
	// waitSends waits until the step's sends are answered or deadline.
	waitSends(st *stepState, step int, deadline time.Time)
	// catchUp makes p's receiver fetch what it missed (the SDK's Sync).
	catchUp(ctx context.Context, p *pair) error
	close()
}

// sdkDriver drives the pairs through the Go SDK. wgs: each step's
// open-loop sends.
type sdkDriver struct {
	b   *w2
	wgs []sync.WaitGroup
}

func (d *sdkDriver) sendOpen(ctx context.Context, st *stepState, p *pair, step int, measured bool, intended time.Time) {
	st.outstanding.Add(1)
	d.wgs[step].Go(func() {
		defer st.outstanding.Add(-1)
		d.b.send(ctx, st, p, step, measured, intended)
	})
}

func (d *sdkDriver) closedLoop(ctx context.Context, drivers *sync.WaitGroup, st *stepState, step, inflight int, measureFrom, end time.Time) {
	for _, p := range d.b.pairs {
		for range inflight {
			drivers.Go(func() {
				for {
					now := time.Now()
					if !now.Before(end) || ctx.Err() != nil {
						return
					}
					d.b.send(ctx, st, p, step, !now.Before(measureFrom), now)
				}
			})
		}
	}
}

func (d *sdkDriver) waitSends(_ *stepState, step int, deadline time.Time) {
	waitUntil(&d.wgs[step], deadline)
}

func (d *sdkDriver) catchUp(ctx context.Context, p *pair) error { return p.receiver.Sync(ctx) }

func runW2(ctx context.Context, c *common, o w2Opts) (report, error) {
	if o.pairs < 1 || o.inflight < 1 || o.schedulers < 1 {
		return nil, errors.New("bench w2: --pairs, --inflight and --schedulers must be positive")
	}
	nsteps := len(o.rates)
	if o.closed {
		nsteps++
	}
	// A raw connection that drops ends the run with its cause.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b := newW2(c, o, nsteps)
	b.fail = cancel
	res := &W2Result{Driver: b.driverName(), Transport: c.Transport, Pairs: o.pairs, TextBytes: o.size, ConnLimit: o.connLimit}
	defer b.closeClients()
	if err := b.setup(ctx); err != nil {
		return nil, err
	}
	for i, r := range o.rates {
		st, err := b.runStep(ctx, i, r, 0)
		if err != nil {
			return res, context.Cause(ctx)
		}
		res.Steps = append(res.Steps, st)
	}
	if o.closed {
		st, err := b.runStep(ctx, len(o.rates), 0, o.inflight)
		if err != nil {
			return res, context.Cause(ctx)
		}
		res.Steps = append(res.Steps, st)
	}
	b.finalCheck(ctx, res)
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// carryMissing keeps step idx's undelivered ACKed seqs for finalCheck.
func (b *w2) carryMissing(idx int) {
	for _, p := range b.pairs {
		p.mu.Lock()
		for len(p.unsettled) <= idx {
			p.unsettled = append(p.unsettled, nil)
		}
		for _, s := range p.acked {
			if !p.ledger.seen.has(s) {
				p.unsettled[idx] = append(p.unsettled[idx], s)
			}
		}
		p.mu.Unlock()
	}
}

// finalCheck gives messages missing at a step's end a last chance: when
// the server has drained (no more deliveries for a while), every receiver
// still missing some syncs, and what is still missing is lost.
func (b *w2) finalCheck(ctx context.Context, res *W2Result) {
	var missing uint64
	for _, st := range res.Steps {
		missing += st.LostAtStep
	}
	if missing == 0 {
		return
	}
	b.c.logf("w2: final check: %d ACKed messages missing at step ends; waiting for the server to drain, then syncing", missing)
	deadline := time.Now().Add(2 * time.Minute)
	for last := b.deliveredTotal.Load(); time.Now().Before(deadline); {
		if !sleepCtx(ctx, 3*time.Second) {
			return
		}
		now := b.deliveredTotal.Load()
		if now == last {
			break
		}
		last = now
	}
	var wg sync.WaitGroup
	for _, p := range b.pairs {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			if err := b.drv.catchUp(sctx, p); err != nil {
				b.c.logf("w2: final sync %s: %v", p.to, err)
			}
		})
	}
	wg.Wait()
	sleepCtx(ctx, time.Second)
	for i := range res.Steps {
		var lost uint64
		for _, p := range b.pairs {
			p.mu.Lock()
			if i < len(p.unsettled) {
				lost += p.ledger.missing(p.unsettled[i])
			}
			p.mu.Unlock()
		}
		res.Steps[i].Lost = lost
		res.Steps[i].Recovered = res.Steps[i].MissingAtSettle - min(lost, res.Steps[i].MissingAtSettle)
	}
}

func (b *w2) setup(ctx context.Context) error {
	c, o := b.c, b.o
	names := make([]string, 2*o.pairs)
	for i := range o.pairs {
		names[2*i] = fmt.Sprintf("%s_s%d", c.UsersPrefix, i)
		names[2*i+1] = fmt.Sprintf("%s_r%d", c.UsersPrefix, i)
	}
	c.logf("w2: registering %d users", len(names))
	if err := registerUsers(ctx, c, names, 4); err != nil {
		return fmt.Errorf("bench w2: register: %w", err)
	}
	b.pairs = make([]*pair, o.pairs)
	for i := range b.pairs {
		b.pairs[i] = &pair{from: names[2*i], to: names[2*i+1]}
	}
	return b.drv.connect(ctx)
}

func (b *w2) driverName() string {
	if _, raw := b.drv.(*rawDriver); raw {
		return "raw"
	}
	return "sdk"
}

func (d *sdkDriver) connect(ctx context.Context) error {
	b := d.b
	c, o := b.c, b.o
	for _, p := range b.pairs {
		p.sender = client.New(client.Options{Server: c.Server, Username: p.from, Password: benchPassword, Device: "bench", Platform: "bench", Transport: c.Transport, TLS: c.TLS})
		p.receiver = client.New(client.Options{Server: c.Server, Username: p.to, Password: benchPassword, Device: "bench", Platform: "bench", Transport: c.Transport, TLS: c.TLS,
			OnMessage: func(m client.Message) { b.onMessage(p, m) }})
	}
	c.logf("w2: connecting %d SDK clients (%s)", 2*o.pairs, c.Transport)
	return forEach(ctx, 2*o.pairs, 4, func(ctx context.Context, i int) error {
		p := b.pairs[i/2]
		cl := p.sender
		if i%2 == 1 {
			cl = p.receiver
		}
		if err := cl.Connect(ctx); err != nil {
			return fmt.Errorf("bench w2: connect %s: %w", cl.Username(), err)
		}
		return nil
	})
}

func (b *w2) closeClients() { b.drv.close() }

func (d *sdkDriver) close() {
	var wg sync.WaitGroup
	for _, p := range d.b.pairs {
		if p == nil || p.sender == nil {
			continue
		}
		wg.Go(func() { p.sender.Close(); p.receiver.Close() })
	}
	wg.Wait()
}

// The message text carries the step, the phase (w: warm-up, m: measured)
// and the intended send time in Unix nanoseconds, so the receiver can time
// the delivery from when the message should have been sent.
func (b *w2) text(step int, measured bool, intended int64) string {
	ph := 'w'
	if measured {
		ph = 'm'
	}
	return fmt.Sprintf("b%d|%c|%d|%s", step, ph, intended, b.pad)
}

// parseText reads what text put in, without allocating (the raw driver
// parses the frame's bytes).
func parseText[T string | []byte](t T) (step int, measured bool, intended int64, ok bool) {
	if len(t) < 2 || t[0] != 'b' {
		return 0, false, 0, false
	}
	i := 1
	for ; i < len(t) && t[i] != '|'; i++ {
		if t[i] < '0' || t[i] > '9' || i > 9 {
			return 0, false, 0, false
		}
		step = step*10 + int(t[i]-'0')
	}
	if i == 1 || i == len(t) {
		return 0, false, 0, false
	}
	j := i + 1
	for ; j < len(t) && t[j] != '|'; j++ {
	}
	if j == len(t) {
		return 0, false, 0, false
	}
	measured = j == i+2 && t[i+1] == 'm'
	k := j + 1
	for ; k < len(t) && t[k] != '|'; k++ {
		if t[k] < '0' || t[k] > '9' || k-j > 19 {
			return 0, false, 0, false
		}
		intended = intended*10 + int64(t[k]-'0')
	}
	if k == j+1 {
		return 0, false, 0, false
	}
	return step, measured, intended, true
}

// onMessage runs on the receiver's SDK callback goroutine.
func (b *w2) onMessage(p *pair, m client.Message) {
	now := time.Now().UnixNano()
	step, measured, intended, ok := parseText(m.Text)
	b.delivered(p, m.Seq, now, step, measured, intended, ok)
}

// delivered books one delivery of seq to p's receiver at now (Unix ns);
// step..ok are what the text says. It returns the delivery's kind.
func (b *w2) delivered(p *pair, seq uint64, now int64, step int, measured bool, intended int64, ok bool) deliveryKind {
	p.mu.Lock()
	kind := p.ledger.observe(seq)
	if kind != deliveredDuplicate && ok && measured && int64(step) == b.cur.Load() {
		p.deliverHst.Record(now - intended)
	}
	p.mu.Unlock()
	if kind == deliveredDuplicate {
		return kind
	}
	b.deliveredTotal.Add(1)
	if ok && step >= 0 && step < len(b.steps) {
		b.steps[step].delivered.Add(1)
	}
	return kind
}

// send sends one message and records its ACK.
func (b *w2) send(ctx context.Context, st *stepState, p *pair, step int, measured bool, intended time.Time) {
	st.sent.Add(1)
	ack, err := p.sender.Send(ctx, client.SendRequest{ToUser: p.to, Text: b.text(step, measured, intended.UnixNano())})
	lat := time.Since(intended)
	if err != nil {
		st.failed.Add(1)
		st.noteErr(err)
		return
	}
	st.acked.Add(1)
	b.ackedTotal.Add(1)
	p.mu.Lock()
	p.acked = append(p.acked, ack.Seq)
	if measured {
		p.ackHist.RecordDuration(lat)
	}
	p.mu.Unlock()
}

// runStep runs one step: open loop at rate (inflight 0) or closed loop with
// inflight sends per sender.
func (b *w2) runStep(ctx context.Context, idx int, rate float64, inflight int) (StepResult, error) {
	c, o := b.c, b.o
	st := b.steps[idx]
	res := StepResult{Mode: "open", TargetRate: rate}
	if inflight > 0 {
		res = StepResult{Mode: "closed", InFlight: inflight}
		res.Note = fmt.Sprintf("throughput capped at %d senders × %.0f req/s = %.0f msgs/s by the per-connection limit", o.pairs, o.connLimit, float64(o.pairs)*o.connLimit)
	} else {
		res.PerSenderRate = rate / float64(o.pairs)
		if res.PerSenderRate > o.connLimit {
			res.Note = fmt.Sprintf("%.0f msgs/s per sender exceeds the per-connection limit %.0f/s: sends are rate_limited and retried", res.PerSenderRate, o.connLimit)
		}
	}
	for _, p := range b.pairs {
		p.mu.Lock()
		p.ackHist.Reset()
		p.deliverHst.Reset()
		p.acked = p.acked[:0]
		p.mu.Unlock()
	}
	dup0, reord0 := b.ledgerTotals()
	b.cur.Store(int64(idx))
	if inflight > 0 {
		c.logf("w2: step %d closed loop, %d in flight per sender, warm-up %v, window %v", idx, inflight, c.Warmup, c.Duration)
	} else {
		c.logf("w2: step %d open loop %.0f msgs/s (%.1f per sender), warm-up %v, window %v", idx, rate, res.PerSenderRate, c.Warmup, c.Duration)
	}

	// Sends may take until the settle deadline; then they are abandoned.
	sendCtx, cancelSends := context.WithTimeout(ctx, c.Warmup+c.Duration+o.settle)
	defer cancelSends()
	t0 := time.Now()
	measureFrom, end := t0.Add(c.Warmup), t0.Add(c.Warmup+c.Duration)

	var window windowSampler
	var drivers sync.WaitGroup
	drivers.Go(func() {
		if sleepUntil(ctx, measureFrom) {
			window.start(b)
			if sleepUntil(ctx, end) {
				window.stop(b)
			}
		}
	})
	if b.monitor != nil {
		drivers.Go(func() { b.monitor(ctx, measureFrom, end) })
	}
	if inflight > 0 {
		b.drv.closedLoop(sendCtx, &drivers, st, idx, inflight, measureFrom, end)
	} else {
		period := float64(time.Second) / rate
		for j := range o.schedulers {
			drivers.Go(func() {
				for k := int64(j); ; k += int64(o.schedulers) {
					intended := t0.Add(time.Duration(float64(k) * period))
					if !intended.Before(end) {
						return
					}
					if wait := time.Until(intended); wait > 0 {
						if !sleepCtx(ctx, wait) {
							return
						}
					}
					p := b.pairs[k%int64(len(b.pairs))]
					measured := !intended.Before(measureFrom)
					if st.outstanding.Load() >= o.maxOutstanding {
						st.skipped.Add(1)
						continue
					}
					b.drv.sendOpen(sendCtx, st, p, idx, measured, intended)
				}
			})
		}
	}
	drivers.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	// Settle: wait for outstanding sends, then for the deliveries.
	settleEnd := time.Now().Add(o.settle)
	b.drv.waitSends(st, idx, settleEnd)
	res.Unsettled = st.sent.Load() - st.acked.Load() - st.failed.Load()
	lost := b.waitDelivered(ctx, settleEnd)
	res.MissingAtSettle = lost
	if lost > 0 {
		// Ask the receivers that miss messages to sync, then count again.
		c.logf("w2: %d ACKed messages not delivered after the settle; syncing receivers", lost)
		b.syncMissing(ctx)
		lost = b.waitDelivered(ctx, time.Now().Add(5*time.Second))
	}
	b.cur.Store(-1)
	dup1, reord1 := b.ledgerTotals()
	b.carryMissing(idx)

	res.WindowSeconds = window.wall.Seconds()
	if window.wall > 0 {
		res.WindowStartMs, res.WindowEndMs = window.t0.UnixMilli(), window.t1.UnixMilli()
	}
	res.Sent, res.Acked, res.Failed, res.Delivered = st.sent.Load(), st.acked.Load(), st.failed.Load(), st.delivered.Load()
	res.Skipped = uint64(st.skipped.Load())
	res.Lost, res.LostAtStep, res.Duplicated, res.Reordered = lost, lost, dup1-dup0, reord1-reord0
	res.Recovered = res.MissingAtSettle - lost
	if window.wall > 0 {
		res.AckedRate = float64(window.acked) / window.wall.Seconds()
		res.DeliveredRate = float64(window.delivered) / window.wall.Seconds()
	}
	ackH, delH := b.latencies()
	res.Ack, res.Deliver = ackH.Summarize(), delH.Summarize()
	if d := deltaCPU(window.srv0, window.srv1); d.Valid {
		res.ServerMeasured = true
		res.ServerCores = d.Cores
		res.ServerRSSMiB = float64(window.srv1.RSS) / (1 << 20)
		if window.delivered > 0 {
			res.ServerCPUUsPerMsg = float64(d.CPU.Microseconds()) / float64(window.delivered)
		}
	}
	if d := deltaCPU(window.gen0, window.gen1); d.Valid {
		res.GeneratorCores = d.Cores
		if window.delivered > 0 {
			res.GeneratorCPUUsPerMsg = float64(d.CPU.Microseconds()) / float64(window.delivered)
		}
	}
	st.errMu.Lock()
	res.Errors = appendErrorCounts(res.Errors, st.errs)
	st.errMu.Unlock()
	c.logf("w2: step %d: acked %.0f/s delivered %.0f/s, ack p99 %.2f ms, deliver p99 %.2f ms, lost %d",
		idx, res.AckedRate, res.DeliveredRate, res.Ack.P99, res.Deliver.P99, res.Lost)
	return res, nil
}

// latencies merges the pairs' latency histograms: the running step's so
// far.
func (b *w2) latencies() (ack, del Histogram) {
	for _, p := range b.pairs {
		p.mu.Lock()
		ack.Merge(&p.ackHist)
		del.Merge(&p.deliverHst)
		p.mu.Unlock()
	}
	return ack, del
}

func (b *w2) ledgerTotals() (dup, reord uint64) {
	for _, p := range b.pairs {
		p.mu.Lock()
		dup += p.ledger.duplicated
		reord += p.ledger.reordered
		p.mu.Unlock()
	}
	return dup, reord
}

// missing counts this step's ACKed seqs not yet delivered.
func (b *w2) missing() (n uint64) {
	for _, p := range b.pairs {
		p.mu.Lock()
		n += p.ledger.missing(p.acked)
		p.mu.Unlock()
	}
	return n
}

// waitDelivered polls until every ACKed message arrived or until deadline,
// and returns how many are still missing.
func (b *w2) waitDelivered(ctx context.Context, deadline time.Time) uint64 {
	for {
		n := b.missing()
		if n == 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			return n
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

func (b *w2) syncMissing(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range b.pairs {
		p.mu.Lock()
		miss := p.ledger.missing(p.acked)
		p.mu.Unlock()
		if miss > 0 {
			wg.Go(func() {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if err := b.drv.catchUp(sctx, p); err != nil {
					b.c.logf("w2: sync %s: %v", p.to, err)
				}
			})
		}
	}
	wg.Wait()
}

// windowSampler snapshots the counters and /proc at the window's edges.
type windowSampler struct {
	t0, t1                 time.Time
	acked0, delivered0     uint64
	srv0, srv1, gen0, gen1 procSample
	wall                   time.Duration
	acked, delivered       uint64
}

func (w *windowSampler) start(b *w2) {
	w.srv0, w.gen0 = readProc(b.c.PID), readProc(selfPID)
	w.t0 = time.Now()
	w.acked0, w.delivered0 = b.ackedTotal.Load(), b.deliveredTotal.Load()
}

func (w *windowSampler) stop(b *w2) {
	w.acked, w.delivered = b.ackedTotal.Load()-w.acked0, b.deliveredTotal.Load()-w.delivered0
	w.t1 = time.Now()
	w.srv1, w.gen1 = readProc(b.c.PID), readProc(selfPID)
	w.wall = w.t1.Sub(w.t0)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	if d := time.Until(t); d > 0 {
		return sleepCtx(ctx, d)
	}
	return ctx.Err() == nil
}

func (r *W2Result) problems() []string {
	var p []string
	for i, s := range r.Steps {
		if s.Lost+s.Duplicated+s.Reordered+s.Failed+s.Skipped > 0 {
			p = append(p, fmt.Sprintf("step %d: lost %d, duplicated %d, reordered %d, failed %d, skipped %d", i, s.Lost, s.Duplicated, s.Reordered, s.Failed, s.Skipped))
		}
		if s.Acked == 0 {
			p = append(p, fmt.Sprintf("step %d: nothing was ACKed", i))
		}
	}
	return p
}

func (r *W2Result) table(w io.Writer) {
	fmt.Fprintf(w, "W2 1:1 durable messages: %d pairs, %s driver, %s, %d-byte texts\n", r.Pairs, r.Driver, r.Transport, r.TextBytes)
	t := newTable(w)
	t.row("step", "target/s", "acked/s", "deliv/s", "ack p50/p90/p99/p99.9/max ms", "deliver p50/p90/p99/p99.9/max ms",
		"sent", "acked", "failed", "deliv", "lost", "dup", "reord", "srv µs/msg", "srv cores", "gen µs/msg", "gen cores", "srv RSS MiB")
	for _, s := range r.Steps {
		target := fmt.Sprintf("%.0f", s.TargetRate)
		if s.Mode == "closed" {
			target = fmt.Sprintf("closed W=%d", s.InFlight)
		}
		cpu, cores, rss := "n/m", "n/m", "n/m"
		if s.ServerMeasured {
			cpu, cores, rss = fmt.Sprintf("%.1f", s.ServerCPUUsPerMsg), fmt.Sprintf("%.2f", s.ServerCores), fmt.Sprintf("%.0f", s.ServerRSSMiB)
		}
		t.row(s.Mode, target, fmt.Sprintf("%.0f", s.AckedRate), fmt.Sprintf("%.0f", s.DeliveredRate),
			pct(s.Ack), pct(s.Deliver),
			u(s.Sent), u(s.Acked), u(s.Failed), u(s.Delivered), u(s.Lost), u(s.Duplicated), u(s.Reordered),
			cpu, cores, fmt.Sprintf("%.1f", s.GeneratorCPUUsPerMsg), fmt.Sprintf("%.2f", s.GeneratorCores), rss)
	}
	t.flush()
	for i, s := range r.Steps {
		if s.Note != "" {
			fmt.Fprintf(w, "step %d note: %s\n", i, s.Note)
		}
		if s.LostAtStep > 0 {
			fmt.Fprintf(w, "step %d: %d ACKed messages were not delivered by the step's settle deadline; %d still missing after the final sync\n", i, s.LostAtStep, s.Lost)
		}
		if s.MissingAtSettle > 0 {
			fmt.Fprintf(w, "step %d: %d ACKed messages missing at the settle deadline, %d of them then brought by the receiver's sync (raw: history)\n", i, s.MissingAtSettle, s.Recovered)
		}
		if s.Skipped > 0 {
			fmt.Fprintf(w, "step %d: %d scheduled sends skipped: the generator already had --max-outstanding sends waiting for ACKs (server overloaded)\n", i, s.Skipped)
		}
		if s.Unsettled > 0 {
			fmt.Fprintf(w, "step %d: %d sends unfinished at the settle deadline\n", i, s.Unsettled)
		}
		for _, e := range s.Errors {
			fmt.Fprintf(w, "step %d error: %s\n", i, e)
		}
	}
	if len(r.Steps) > 0 && !r.Steps[0].ServerMeasured {
		fmt.Fprintln(w, "n/m: not measured (no --pid).")
	}
	fmt.Fprintln(w, "The generator and the server share the machine's cores (see gen cores beside srv cores).")
}

func pct(s Summary) string {
	return fmt.Sprintf("%s/%s/%s/%s/%s", f2(s.P50), f2(s.P90), f2(s.P99), f2(s.P999), f2(s.Max))
}

func f2(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func u(v uint64) string { return strconv.FormatUint(v, 10) }
