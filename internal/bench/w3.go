package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// W3 is group fan-out: --groups groups of --members members each (the same
// users in every group), every member online. --senders SDK clients (members
// too; the first one owns the groups) send open loop at --rate messages/s per
// group; the other members are raw connections (rawconn.go) that only read,
// so the generator stays light. Every delivery is timed from the intended
// send time stamped in the text, and checked per member and group by seq.

// W3Result is the outcome of the group fan-out workload.
type W3Result struct {
	Transport string      `json:"transport"`
	Members   int         `json:"members_per_group"`
	Groups    int         `json:"groups"`
	Senders   int         `json:"senders"`
	Receivers int         `json:"raw_receivers"`
	Connected int         `json:"raw_receivers_connected"`
	TextBytes int         `json:"text_bytes"`
	SetupS    float64     `json:"setup_s"`
	Steps     []W3StepRes `json:"steps"`
	Errors    []string    `json:"errors,omitempty"`
	groupIDs  []string
}

// W3StepRes is one open-loop rate step.
type W3StepRes struct {
	RatePerGroup    float64 `json:"rate_per_group_per_s"`
	TargetDelivRate float64 `json:"target_deliveries_per_s"` // rate × groups × (members − 1)
	WindowS         float64 `json:"window_s"`
	AckedRate       float64 `json:"acked_per_s"`
	DeliveryRate    float64 `json:"deliveries_per_s"` // raw + SDK members, first deliveries, in the window
	// Intended send time → read by a member, every delivery of a message
	// intended in the window (raw and SDK members).
	Latency Summary `json:"delivery_latency"`
	Ack     Summary `json:"ack_latency"`

	Sent, Acked, Failed, Skipped uint64
	Expected                     uint64 `json:"expected_raw_deliveries"` // acked × raw receivers
	Delivered                    uint64 `json:"raw_deliveries"`          // distinct, raw receivers, whole step
	MissingAtSettle              uint64 `json:"missing_at_settle"`       // ACKed, not delivered live by the settle
	Recovered                    uint64 `json:"recovered_by_history"`    // of those, found by the history pull
	Lost                         uint64 `json:"lost"`                    // not delivered and not in the member's history
	Duplicated                   uint64 `json:"duplicated"`
	Reordered                    uint64 `json:"reordered"`
	Dropped                      int64  `json:"connections_dropped"`

	ServerMeasured   bool     `json:"server_measured"`
	ServerUsPerDeliv float64  `json:"server_cpu_us_per_delivery"`
	ServerCores      float64  `json:"server_cpu_cores"`
	ServerRSSMiB     float64  `json:"server_rss_mib"`
	GenCores         float64  `json:"generator_cpu_cores"`
	Errors           []string `json:"errors,omitempty"`
}

type w3Opts struct {
	members, groups, senders, size, conc int
	rates                                []float64
	settle                               time.Duration
	maxOutstanding                       int64
	tokens                               string
}

func w3Flags(fs *flag.FlagSet, smoke *bool) func(context.Context, *common) (report, error) {
	var o w3Opts
	var rates string
	fs.IntVar(&o.members, "members", 1000, "members per group, senders included (the server's --max-group-size is 5000 by default)")
	fs.IntVar(&o.groups, "groups", 1, "groups; every member is in every group")
	fs.StringVar(&rates, "rate", "100", "open-loop steps: messages/s per group, comma-separated (a sweep finds the ceiling)")
	fs.IntVar(&o.senders, "senders", 4, "SDK senders (members; messages go round-robin over them)")
	fs.IntVar(&o.size, "size", 64, "message text bytes")
	fs.IntVar(&o.conc, "concurrency", 4, "registrations and logins in flight (the server hashes 2 passwords at a time)")
	fs.DurationVar(&o.settle, "settle", 15*time.Second, "after a step, wait at most this long for deliveries before the history check")
	fs.Int64Var(&o.maxOutstanding, "max-outstanding", 20000, "unACKed sends the generator keeps at most; beyond, scheduled sends are skipped and counted")
	fs.StringVar(&o.tokens, "tokens", "", "file of the members' logins: written on first use, reused later (same server data directory), skipping registration")
	fs.Duration("duration", 30*time.Second, "measurement window of each step")
	fs.Duration("warmup", 5*time.Second, "warm-up of each step (same rate, not measured)")
	return func(ctx context.Context, c *common) (report, error) {
		if c.Smoke {
			smokeDefault(c, "members", &o.members, 20)
			smokeDefault(c, "senders", &o.senders, 2)
			smokeDefault(c, "rate", &rates, "50")
			smokeDefault(c, "duration", &c.Duration, 3*time.Second)
			smokeDefault(c, "warmup", &c.Warmup, time.Second)
			smokeDefault(c, "settle", &o.settle, 5*time.Second)
		}
		var err error
		if o.rates, err = parseRates(rates, "bench w3: --rate"); err != nil {
			return nil, err
		}
		if len(o.rates) == 0 {
			return nil, errors.New("bench w3: --rate: nothing to run")
		}
		if o.senders < 1 || o.groups < 1 || o.members < o.senders+1 || o.conc < 1 {
			return nil, errors.New("bench w3: need --senders ≥ 1, --groups ≥ 1, --members > --senders")
		}
		return runW3(ctx, c, o)
	}
}

// w3Shard is a latency histogram shared by a slice of the members.
type w3Shard struct {
	mu   sync.Mutex
	hist Histogram
	_    [40]byte // keep shards off each other's cache lines
}

const w3Shards = 32

// w3Member is one raw receiving connection. Its reader goroutine owns the
// ledgers while a step runs; mu lets the driver read them.
type w3Member struct {
	rc      *rawConn
	idx     int
	wmu     sync.Mutex // writes: the pinger and the history pull
	mu      sync.Mutex
	ledgers []convLedger // by group index
	replies chan *magpiepb.Envelope
}

type w3 struct {
	c       *common
	o       w3Opts
	groups  map[string]int // group id → index
	gids    []string
	members []*w3Member
	senders []*client.Client
	shards  [w3Shards]w3Shard
	pad     string

	cur          atomic.Int64 // running step; -1 between steps
	rawDelivered atomic.Uint64
	sdkDelivered atomic.Uint64
	dropped      atomic.Int64
	closing      atomic.Bool
	readers      sync.WaitGroup

	ackMu  sync.Mutex
	acked  [][]uint64 // by group: seqs ACKed in the current step
	ackH   Histogram
	errMu  sync.Mutex
	errs   map[string]int
	stepEr map[string]int
}

func (b *w3) noteErr(msg string) {
	b.errMu.Lock()
	b.errs[msg]++
	if b.stepEr != nil {
		b.stepEr[msg]++
	}
	b.errMu.Unlock()
}

func runW3(ctx context.Context, c *common, o w3Opts) (report, error) {
	b := &w3{c: c, o: o, groups: map[string]int{}, errs: map[string]int{}, pad: strings.Repeat("x", max(0, o.size-40))}
	b.cur.Store(-1)
	res := &W3Result{Transport: c.Transport, Members: o.members, Groups: o.groups, Senders: o.senders,
		Receivers: o.members - o.senders, TextBytes: o.size}
	t0 := time.Now()
	defer b.close()
	if err := b.setup(ctx, res); err != nil {
		return nil, err
	}
	res.SetupS = time.Since(t0).Seconds()
	res.groupIDs = b.gids
	pingCtx, stopPing := context.WithCancel(ctx)
	var pingWG sync.WaitGroup
	pingWG.Go(func() { b.pingLoop(pingCtx, 20*time.Second) })
	defer func() { stopPing(); pingWG.Wait() }()
	for i, r := range o.rates {
		st, err := b.runStep(ctx, i, r)
		if err != nil {
			return res, err
		}
		res.Steps = append(res.Steps, st)
	}
	b.errMu.Lock()
	res.Errors = appendErrorCounts(res.Errors, b.errs)
	b.errMu.Unlock()
	return res, nil
}

// w3Tokens is what --tokens keeps between runs.
type w3Tokens struct {
	Prefix string  `json:"prefix"`
	Logins []login `json:"logins"`
}

func (b *w3) setup(ctx context.Context, res *W3Result) error {
	c, o := b.c, b.o
	nraw := o.members - o.senders
	var tok w3Tokens
	reuse := false
	if o.tokens != "" {
		if found, err := readTokens(o.tokens, &tok); found {
			if err != nil {
				return fmt.Errorf("bench w3: --tokens %s: %w", o.tokens, err)
			}
			if len(tok.Logins) < nraw {
				return fmt.Errorf("bench w3: --tokens %s holds %d members, need %d", o.tokens, len(tok.Logins), nraw)
			}
			reuse = true
			c.logf("w3: reusing %d logins from %s (prefix %s)", nraw, o.tokens, tok.Prefix)
		}
	}
	if !reuse {
		tok = w3Tokens{Prefix: c.UsersPrefix}
	}
	// Senders are new users every run: an SDK client starts with empty
	// cursors, and reused senders would first sync every earlier run's
	// groups (a sync answer past the 64 KiB frame limit kills the connection).
	senderName := func(i int) string { return fmt.Sprintf("%s_w3s_%d", c.UsersPrefix, i) }
	memberName := func(i int) string { return fmt.Sprintf("%s_w3m_%d", tok.Prefix, i) }
	hc := c.httpClient(60*time.Second, o.conc*2)
	snames := make([]string, o.senders)
	for i := range snames {
		snames[i] = senderName(i)
	}
	if err := registerUsers(ctx, c, snames, o.conc); err != nil {
		return fmt.Errorf("bench w3: register senders: %w", err)
	}
	if !reuse {
		names := make([]string, 0, nraw)
		for i := range nraw {
			names = append(names, memberName(i))
		}
		c.logf("w3: registering %d users (%d in flight)", len(names), o.conc)
		t := time.Now()
		if err := registerUsers(ctx, c, names, o.conc); err != nil {
			return fmt.Errorf("bench w3: register: %w", err)
		}
		c.logf("w3: registered in %v; logging in %d members", time.Since(t).Round(time.Millisecond), nraw)
		t = time.Now()
		var err error
		if tok.Logins, err = loginUsers(ctx, hc, c.Server, names, "w3", o.conc); err != nil {
			return fmt.Errorf("bench w3: login: %w", err)
		}
		c.logf("w3: logged in in %v", time.Since(t).Round(time.Millisecond))
		if o.tokens != "" {
			if err := writeTokens(o.tokens, tok); err != nil {
				return fmt.Errorf("bench w3: --tokens: %w", err)
			}
		}
	}

	// Senders: SDK clients, each timing the others' messages.
	for i := range o.senders {
		cl := client.New(client.Options{Server: c.Server, Username: senderName(i), Password: benchPassword,
			Device: "w3", Platform: "bench", Transport: c.Transport, TLS: c.TLS, OnMessage: b.onSDKMessage})
		b.senders = append(b.senders, cl)
	}
	c.logf("w3: connecting %d SDK senders", o.senders)
	if err := forEach(ctx, o.senders, 2, func(ctx context.Context, i int) error {
		return b.senders[i].Connect(ctx)
	}); err != nil {
		return fmt.Errorf("bench w3: connect sender: %w", err)
	}

	// Groups: the first sender owns them; members are added in chunks
	// (request bodies are limited to 64 KiB).
	all := make([]string, 0, o.members-1)
	for i := 1; i < o.senders; i++ {
		all = append(all, senderName(i))
	}
	for i := range nraw {
		all = append(all, memberName(i))
	}
	owner := b.senders[0]
	for g := range o.groups {
		grp, err := owner.CreateGroup(ctx, client.NewGroup{Name: fmt.Sprintf("w3 %s %d", c.UsersPrefix, g)})
		if err != nil {
			return fmt.Errorf("bench w3: create group: %w", err)
		}
		for chunk := range sliceChunks(all, 1000) {
			if _, err := owner.AddMembers(ctx, grp.ID, chunk...); err != nil {
				return fmt.Errorf("bench w3: add members to %s: %w", grp.ID, err)
			}
		}
		b.groups[grp.ID] = g
		b.gids = append(b.gids, grp.ID)
		c.logf("w3: group %s: %d members", grp.ID, len(all)+1)
	}
	b.acked = make([][]uint64, o.groups)

	c.logf("w3: opening %d raw %s member connections", nraw, c.Transport)
	t := time.Now()
	b.members = make([]*w3Member, nraw)
	var failed atomic.Int64
	err := openRawConns(ctx, c, tok.Logins[:nraw], nraw, 100, func(rc *rawConn) {
		if rc.tcp != nil {
			// Deliveries come in batches: a bigger buffer, fewer reads.
			rc.r = wire.NewReader(rc.tcp, 16<<10, wire.MaxFrame)
		}
	}, func(stage string, err error) {
		failed.Add(1)
		if stage == "dial" {
			b.noteErr("dial: " + errText(err))
		} else {
			b.noteErr("auth: " + err.Error())
		}
	}, func(i int, rc *rawConn, _, _ time.Duration) {
		m := &w3Member{rc: rc, idx: i, ledgers: make([]convLedger, o.groups), replies: make(chan *magpiepb.Envelope, 4)}
		b.members[i] = m
		b.readers.Add(1)
		go b.readLoop(m)
	})
	if err != nil {
		return err
	}
	ms := b.members[:0]
	for _, m := range b.members {
		if m != nil {
			ms = append(ms, m)
		}
	}
	b.members = ms
	res.Connected = len(ms)
	c.logf("w3: %d of %d connected in %v", len(ms), nraw, time.Since(t).Round(time.Millisecond))
	if len(ms) == 0 {
		return errors.New("bench w3: no member connection could be opened")
	}
	// Presence is asynchronous: let the connections' routes settle.
	sleepCtx(ctx, time.Second)
	return nil
}

// pingLoop pings every member once per interval, spread over it in 20 ms
// slices (like W1's), without stopping between steps.
func (b *w3) pingLoop(ctx context.Context, interval time.Duration) {
	const slice = 20 * time.Millisecond
	n := len(b.members)
	per := max(1, int(interval/slice))
	t := time.NewTicker(slice)
	defer t.Stop()
	for tick := 0; ; tick++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		from, to := (tick%per)*n/per, (tick%per+1)*n/per
		now := time.Now().UnixMilli()
		for _, m := range b.members[from:to] {
			m.wmu.Lock()
			err := m.rc.write(&magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: now}}})
			m.wmu.Unlock()
			if err != nil && !b.closing.Load() {
				b.noteErr("ping: " + errText(err))
			}
		}
	}
}

// errText drops the socket addresses from network errors, so one cause
// is counted once, not once per connection.
func errText(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && strings.Contains(msg[:i], "127.") {
		if j := strings.Index(msg, " "); j >= 0 && j < i {
			return msg[:j] + msg[i:]
		}
	}
	return msg
}

func sliceChunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for i := 0; i < len(s); i += n {
			if !yield(s[i:min(i+n, len(s))]) {
				return
			}
		}
	}
}

func (b *w3) close() {
	b.closing.Store(true)
	for _, m := range b.members {
		if m != nil {
			m.rc.close()
		}
	}
	b.readers.Wait()
	var wg sync.WaitGroup
	for _, s := range b.senders {
		wg.Go(func() { s.Close() })
	}
	wg.Wait()
}

// text: "w3|<step>|<m or w>|<intended unix ns>|pad".
func (b *w3) text(step int, measured bool, intended int64) string {
	ph := "w"
	if measured {
		ph = "m"
	}
	return "w3|" + strconv.Itoa(step) + "|" + ph + "|" + strconv.FormatInt(intended, 10) + "|" + b.pad
}

// parseW3 reads the text's step, phase and intended time without allocating.
func parseW3(t []byte) (step int, measured bool, intended int64, ok bool) {
	if !bytes.HasPrefix(t, []byte("w3|")) {
		return 0, false, 0, false
	}
	t = t[3:]
	i := bytes.IndexByte(t, '|')
	if i < 1 || len(t) < i+3 {
		return 0, false, 0, false
	}
	for _, ch := range t[:i] {
		if ch < '0' || ch > '9' {
			return 0, false, 0, false
		}
		step = step*10 + int(ch-'0')
	}
	measured = t[i+1] == 'm'
	t = t[i+3:]
	for _, ch := range t {
		if ch == '|' {
			break
		}
		if ch < '0' || ch > '9' {
			return 0, false, 0, false
		}
		intended = intended*10 + int64(ch-'0')
	}
	return step, measured, intended, true
}

// parseMessageFrame picks a Message envelope's conversation id, seq and
// text out of the frame without decoding the rest. body is the envelope's
// body field number (14 for a message).
func parseMessageFrame(frame []byte) (body protowire.Number, conv []byte, seq uint64, text []byte, ok bool) {
	var msg []byte
	for b := frame; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, nil, 0, nil, false
		}
		b = b[n:]
		if num >= 10 {
			body = num
		}
		if num == 14 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, nil, 0, nil, false
			}
			msg, b = v, b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, nil, 0, nil, false
		}
		b = b[n:]
	}
	if body != 14 {
		return body, nil, 0, nil, true
	}
	conv, seq, text, ok = parseMessageBody(msg)
	return body, conv, seq, text, ok
}

func (b *w3) readFrame(rc *rawConn) ([]byte, error) {
	if rc.ws != nil {
		_, data, err := rc.ws.ReadMessage()
		return data, err
	}
	return rc.r.ReadFrame()
}

// readLoop reads one member's connection: deliveries are timed and
// ledgered; answers to the final history requests go to m.replies.
func (b *w3) readLoop(m *w3Member) {
	defer b.readers.Done()
	sh := &b.shards[m.idx%w3Shards]
	for {
		frame, err := b.readFrame(m.rc)
		if err != nil {
			if !b.closing.Load() {
				b.dropped.Add(1)
				b.noteErr("dropped: " + errText(err))
			}
			return
		}
		now := time.Now().UnixNano()
		body, conv, seq, text, ok := parseMessageFrame(frame)
		if !ok {
			b.noteErr("undecodable frame")
			continue
		}
		switch body {
		case 14:
			g, isOurs := b.groups[string(conv)] // no allocation for the lookup
			if !isOurs || seq == 0 {
				continue
			}
			m.mu.Lock()
			kind := m.ledgers[g].observe(seq)
			m.mu.Unlock()
			if kind == deliveredDuplicate {
				continue
			}
			b.rawDelivered.Add(1)
			if step, measured, intended, ok := parseW3(text); ok && measured && int64(step) == b.cur.Load() {
				sh.mu.Lock()
				sh.hist.Record(now - intended)
				sh.mu.Unlock()
			}
		case 19, 22: // history_result, error: the final check waits for them
			env := new(magpiepb.Envelope)
			if proto.Unmarshal(frame, env) == nil {
				select {
				case m.replies <- env:
				default:
				}
			}
		case 23:
			env := new(magpiepb.Envelope)
			_ = proto.Unmarshal(frame, env)
			b.noteErr(fmt.Sprintf("kicked: %v", env.GetKick()))
		}
	}
}

// onSDKMessage runs on a sender's callback goroutine.
func (b *w3) onSDKMessage(msg client.Message) {
	now := time.Now().UnixNano()
	if _, ok := b.groups[msg.ConversationID]; !ok || msg.Seq == 0 {
		return
	}
	step, measured, intended, ok := parseW3([]byte(msg.Text))
	if !ok {
		return
	}
	b.sdkDelivered.Add(1)
	if measured && int64(step) == b.cur.Load() {
		sh := &b.shards[int(msg.Seq)%w3Shards]
		sh.mu.Lock()
		sh.hist.Record(now - intended)
		sh.mu.Unlock()
	}
}

func (b *w3) runStep(ctx context.Context, idx int, rate float64) (W3StepRes, error) {
	c, o := b.c, b.o
	res := W3StepRes{RatePerGroup: rate, TargetDelivRate: rate * float64(o.groups) * float64(o.members-1)}
	for i := range b.shards {
		b.shards[i].hist.Reset()
	}
	b.ackMu.Lock()
	for g := range b.acked {
		b.acked[g] = b.acked[g][:0]
	}
	b.ackH.Reset()
	b.ackMu.Unlock()
	b.errMu.Lock()
	b.stepEr = map[string]int{}
	b.errMu.Unlock()
	dup0, reord0 := b.ledgerTotals()
	raw0 := b.rawDelivered.Load()
	drop0 := b.dropped.Load()
	b.cur.Store(int64(idx))
	c.logf("w3: step %d: %.0f msgs/s per group × %d groups → %.0f deliveries/s offered; warm-up %v, window %v",
		idx, rate, o.groups, res.TargetDelivRate, c.Warmup, c.Duration)

	var sent, acked, failed, skipped atomic.Uint64
	var outstanding atomic.Int64
	sendCtx, cancelSends := context.WithTimeout(ctx, c.Warmup+c.Duration+o.settle)
	defer cancelSends()
	var inflight sync.WaitGroup
	t0 := time.Now()
	measureFrom, end := t0.Add(c.Warmup), t0.Add(c.Warmup+c.Duration)

	type snap struct {
		t          time.Time
		acked, del uint64
		srv, gen   procSample
	}
	var w0, w1 snap
	take := func(s *snap) {
		s.srv, s.gen = readProc(c.PID), readProc(selfPID)
		s.t = time.Now()
		s.acked = acked.Load()
		s.del = b.rawDelivered.Load() + b.sdkDelivered.Load()
	}
	var drivers sync.WaitGroup
	drivers.Go(func() {
		if sleepUntil(ctx, measureFrom) {
			take(&w0)
			if sleepUntil(ctx, end) {
				take(&w1)
			}
		}
	})
	// One scheduler: message k is due at t0 + k/(rate×groups), to group
	// k mod groups, from sender (k / groups) mod senders.
	period := float64(time.Second) / (rate * float64(o.groups))
	drivers.Go(func() {
		for k := int64(0); ; k++ {
			intended := t0.Add(time.Duration(float64(k) * period))
			if !intended.Before(end) {
				return
			}
			if wait := time.Until(intended); wait > 0 && !sleepCtx(ctx, wait) {
				return
			}
			g := int(k % int64(o.groups))
			s := b.senders[int(k/int64(o.groups))%len(b.senders)]
			measured := !intended.Before(measureFrom)
			if outstanding.Load() >= o.maxOutstanding {
				skipped.Add(1)
				continue
			}
			outstanding.Add(1)
			sent.Add(1)
			inflight.Go(func() {
				defer outstanding.Add(-1)
				ack, err := s.SendGroup(sendCtx, b.gids[g], b.text(idx, measured, intended.UnixNano()))
				lat := time.Since(intended)
				if err != nil {
					failed.Add(1)
					b.noteErr("send: " + err.Error())
					return
				}
				acked.Add(1)
				b.ackMu.Lock()
				b.acked[g] = append(b.acked[g], ack.Seq)
				if measured {
					b.ackH.RecordDuration(lat)
				}
				b.ackMu.Unlock()
			})
		}
	})
	drivers.Wait()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	// Settle: wait for the sends, then until every ACKed message reached
	// every raw member, deliveries stop for 2 s, or the deadline.
	settleEnd := time.Now().Add(o.settle)
	waitUntil(&inflight, settleEnd)
	nAcked := func() (n uint64) {
		b.ackMu.Lock()
		for _, a := range b.acked {
			n += uint64(len(a))
		}
		b.ackMu.Unlock()
		return n
	}
	expected := nAcked() * uint64(len(b.members))
	for last, still := uint64(0), 0; time.Now().Before(settleEnd) && still < 10; {
		got := b.rawDelivered.Load() - raw0
		if got >= expected {
			break
		}
		if got == last {
			still++
		} else {
			last, still = got, 0
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	b.cur.Store(-1)
	res.Expected = expected
	res.Delivered = b.rawDelivered.Load() - raw0
	res.Sent, res.Acked, res.Failed, res.Skipped = sent.Load(), acked.Load(), failed.Load(), skipped.Load()

	// Check every member against the ACKs; pull history for what is missing.
	b.ackMu.Lock()
	ackedByGroup := make([][]uint64, len(b.acked))
	for g := range b.acked {
		ackedByGroup[g] = append([]uint64(nil), b.acked[g]...)
	}
	b.ackMu.Unlock()
	res.MissingAtSettle, res.Recovered, res.Lost = b.checkMembers(ctx, ackedByGroup)
	dup1, reord1 := b.ledgerTotals()
	res.Duplicated, res.Reordered = dup1-dup0, reord1-reord0
	res.Dropped = b.dropped.Load() - drop0

	if !w1.t.IsZero() {
		wall := w1.t.Sub(w0.t)
		res.WindowS = wall.Seconds()
		res.AckedRate = float64(w1.acked-w0.acked) / wall.Seconds()
		res.DeliveryRate = float64(w1.del-w0.del) / wall.Seconds()
		if d := deltaCPU(w0.srv, w1.srv); d.Valid {
			res.ServerMeasured = true
			res.ServerCores = d.Cores
			res.ServerRSSMiB = float64(w1.srv.RSS) / (1 << 20)
			if w1.del > w0.del {
				res.ServerUsPerDeliv = float64(d.CPU.Microseconds()) / float64(w1.del-w0.del)
			}
		}
		res.GenCores = deltaCPU(w0.gen, w1.gen).Cores
	}
	var lat Histogram
	for i := range b.shards {
		b.shards[i].mu.Lock()
		lat.Merge(&b.shards[i].hist)
		b.shards[i].mu.Unlock()
	}
	res.Latency = lat.Summarize()
	b.ackMu.Lock()
	res.Ack = b.ackH.Summarize()
	b.ackMu.Unlock()
	b.errMu.Lock()
	res.Errors = appendErrorCounts(res.Errors, b.stepEr)
	b.stepEr = nil
	b.errMu.Unlock()
	c.logf("w3: step %d: %.0f deliveries/s, p50/p99/max %.2f/%.2f/%.2f ms, missing %d, lost %d",
		idx, res.DeliveryRate, res.Latency.P50, res.Latency.P99, res.Latency.Max, res.MissingAtSettle, res.Lost)
	return res, nil
}

func (b *w3) ledgerTotals() (dup, reord uint64) {
	for _, m := range b.members {
		m.mu.Lock()
		for i := range m.ledgers {
			dup += m.ledgers[i].duplicated
			reord += m.ledgers[i].reordered
		}
		m.mu.Unlock()
	}
	return dup, reord
}

// checkMembers counts ACKed messages each member did not receive live,
// and pulls those members' history (as the member, over its connection)
// to tell a missed live delivery from a lost message.
func (b *w3) checkMembers(ctx context.Context, acked [][]uint64) (missing, recovered, lost uint64) {
	var mu sync.Mutex
	_ = forEach(ctx, len(b.members), 32, func(ctx context.Context, i int) error {
		m := b.members[i]
		for g, seqs := range acked {
			m.mu.Lock()
			var miss []uint64
			for _, s := range seqs {
				if !m.ledgers[g].seen.has(s) {
					miss = append(miss, s)
				}
			}
			m.mu.Unlock()
			if len(miss) == 0 {
				continue
			}
			found := b.pullHistory(ctx, m, b.gids[g], miss)
			mu.Lock()
			missing += uint64(len(miss))
			recovered += uint64(found)
			lost += uint64(len(miss) - found)
			mu.Unlock()
		}
		return nil
	})
	return missing, recovered, lost
}

// pullHistory asks for the pages covering miss (sorted ascending) and says
// how many of them the member's history holds.
func (b *w3) pullHistory(ctx context.Context, m *w3Member, gid string, miss []uint64) int {
	slices := append([]uint64(nil), miss...)
	sort.Slice(slices, func(i, j int) bool { return slices[i] < slices[j] })
	have := map[uint64]bool{}
	after := slices[0] - 1
	last := slices[len(slices)-1]
	for after < last {
		m.wmu.Lock()
		err := m.rc.write(&magpiepb.Envelope{Id: 9, Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{
			ConversationId: gid, AfterSeq: after, Limit: wire.MaxPageLimit}}})
		m.wmu.Unlock()
		if err != nil {
			b.noteErr("history: " + errText(err))
			break
		}
		var env *magpiepb.Envelope
		select {
		case env = <-m.replies:
		case <-time.After(10 * time.Second):
			b.noteErr("history: no answer in 10 s")
		case <-ctx.Done():
		}
		if env == nil {
			break
		}
		if e := env.GetError(); e != nil {
			b.noteErr(fmt.Sprintf("history: code %d: %s", e.GetCode(), e.GetMessage()))
			break
		}
		msgs := env.GetHistoryResult().GetMessages()
		if len(msgs) == 0 {
			break
		}
		for _, msg := range msgs {
			have[msg.GetSeq()] = true
			after = max(after, msg.GetSeq())
		}
	}
	n := 0
	for _, s := range miss {
		if have[s] {
			n++
		}
	}
	return n
}

func (r *W3Result) problems() []string {
	var p []string
	if r.Connected < r.Receivers {
		p = append(p, fmt.Sprintf("%d of %d member connections failed", r.Receivers-r.Connected, r.Receivers))
	}
	for i, s := range r.Steps {
		if s.Lost+s.Duplicated+s.Reordered+s.Failed+s.Skipped > 0 || s.Dropped > 0 {
			p = append(p, fmt.Sprintf("step %d: lost %d, duplicated %d, reordered %d, failed %d, skipped %d, dropped %d",
				i, s.Lost, s.Duplicated, s.Reordered, s.Failed, s.Skipped, s.Dropped))
		}
		if s.Acked == 0 || s.Delivered == 0 {
			p = append(p, fmt.Sprintf("step %d: nothing acked or delivered", i))
		}
	}
	return p
}

func (r *W3Result) table(w io.Writer) {
	fmt.Fprintf(w, "W3 group fan-out: %d group(s) of %d members (%d SDK senders, %d raw members, %d connected), %s, %d-byte texts; setup %.1f s\n",
		r.Groups, r.Members, r.Senders, r.Receivers, r.Connected, r.Transport, r.TextBytes, r.SetupS)
	t := newTable(w)
	t.row("msgs/s/group", "offered deliv/s", "acked/s", "deliv/s", "deliver p50/p90/p99/p99.9/max ms", "ack p50/p99 ms",
		"sent", "acked", "failed", "skipped", "raw deliv/expected", "missed live", "recovered", "lost", "dup", "reord", "dropped",
		"srv µs/deliv", "srv cores", "gen cores", "srv RSS MiB")
	for _, s := range r.Steps {
		cpu, cores, rss := "n/m", "n/m", "n/m"
		if s.ServerMeasured {
			cpu, cores, rss = fmt.Sprintf("%.2f", s.ServerUsPerDeliv), fmt.Sprintf("%.2f", s.ServerCores), fmt.Sprintf("%.0f", s.ServerRSSMiB)
		}
		t.row(fmt.Sprintf("%.0f", s.RatePerGroup), fmt.Sprintf("%.0f", s.TargetDelivRate), fmt.Sprintf("%.0f", s.AckedRate),
			fmt.Sprintf("%.0f", s.DeliveryRate), pct(s.Latency), f2(s.Ack.P50)+"/"+f2(s.Ack.P99),
			u(s.Sent), u(s.Acked), u(s.Failed), u(s.Skipped), u(s.Delivered)+"/"+u(s.Expected),
			u(s.MissingAtSettle), u(s.Recovered), u(s.Lost), u(s.Duplicated), u(s.Reordered), strconv.FormatInt(s.Dropped, 10),
			cpu, cores, fmt.Sprintf("%.2f", s.GenCores), rss)
	}
	t.flush()
	for i, s := range r.Steps {
		for _, e := range s.Errors {
			fmt.Fprintf(w, "step %d error: %s\n", i, e)
		}
	}
	if len(r.Steps) > 0 && !r.Steps[0].ServerMeasured {
		fmt.Fprintln(w, "n/m: not measured (no --pid).")
	}
	fmt.Fprintln(w, "deliv/s counts raw and SDK members; latency is intended send time → read by the member. The generator and the server share the machine's cores.")
}
