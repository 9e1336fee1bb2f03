package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// W8Result is the outcome of the MQTT workload (docs/mqtt.md): idle MQTT
// connections (server memory per connection), then device → user
// pass-through at QoS 1 (closed loop) and QoS 0 (open loop): devices
// publish to magpie/to/user/{receiver}, receivers read the deliveries on
// the TCP protocol.
type W8Result struct {
	Idle           int     `json:"idle_connections"`
	IdleConnected  int     `json:"idle_connected"`
	IdleDropped    int64   `json:"idle_dropped"`
	ServerMeasured bool    `json:"server_measured"`
	RSSBeforeMiB   float64 `json:"server_rss_before_mib"`
	RSSIdleMiB     float64 `json:"server_rss_idle_mib"`
	RSSPerConnKB   float64 `json:"server_rss_per_idle_conn_kb"`

	Devices   int      `json:"devices"`
	Receivers int      `json:"receivers"`
	Window    int      `json:"qos1_in_flight_per_device"`
	Passes    []W8Pass `json:"passes"`
	Errors    []string `json:"errors,omitempty"`
}

// W8Pass is one pass-through run at one QoS.
type W8Pass struct {
	QoS     int     `json:"qos"`
	Rate    float64 `json:"offered_per_s"` // QoS 0; 0: closed loop (QoS 1)
	WindowS float64 `json:"window_s"`
	Sent    int64   `json:"sent"`     // in the window
	Acked   int64   `json:"acked"`    // QoS 1 PUBACKs in the window
	Recv    int64   `json:"received"` // deliveries read in the window
	MsgRate float64 `json:"received_per_s"`
	// Whole pass, after settling: sent (QoS 0) or acknowledged (QoS 1)
	// but never delivered.
	Lost            int64   `json:"lost"`
	AckLatency      Summary `json:"publish_to_puback_latency"`
	DeliveryLatency Summary `json:"publish_to_delivery_latency"`
	ServerCPUUs     float64 `json:"server_cpu_us_per_msg"`
	GenCPUUs        float64 `json:"generator_cpu_us_per_msg"`
	ServerCores     float64 `json:"server_cpu_cores"`
	GenCores        float64 `json:"generator_cpu_cores"`
}

type w8Opts struct {
	idle, devices, receivers, window int
	rate0, rate1                     float64
	tokens                           string
	loginOnly                        bool
}

func w8Flags(fs *flag.FlagSet, smoke *bool) func(context.Context, *common) (report, error) {
	var o w8Opts
	fs.IntVar(&o.idle, "idle", 1000, "idle MQTT connections (one login each: a client id is a device)")
	fs.IntVar(&o.devices, "devices", 20, "publishing devices (one user each)")
	fs.IntVar(&o.receivers, "receivers", 4, "receiving users (one TCP connection each); device i sends to receiver i mod this")
	fs.IntVar(&o.window, "window", 16, "QoS 1: PUBLISHes in flight per device (closed loop)")
	fs.Float64Var(&o.rate0, "qos0-rate", 2000, "QoS 0: PUBLISHes per second, all devices together (open loop)")
	fs.Float64Var(&o.rate1, "qos1-rate", 0, "QoS 1: PUBLISHes per second, all devices together, still within --window (0: closed loop; a device over the server's --conn-rate or --user-send-rate is disconnected)")
	fs.StringVar(&o.tokens, "tokens", "", "file of the users and logins: reused if it exists, else written after logging in (as in W1: restart the server on the same --data before measuring, so Argon2id's memory stays out of the RSS figures)")
	fs.BoolVar(&o.loginOnly, "login-only", false, "register, log in, write --tokens and stop")
	fs.Duration("duration", 15*time.Second, "measurement window of each pass")
	fs.Duration("warmup", 3*time.Second, "publishing before each window starts")
	return func(ctx context.Context, c *common) (report, error) {
		if c.Smoke {
			smokeDefault(c, "idle", &o.idle, 20)
			smokeDefault(c, "devices", &o.devices, 4)
			smokeDefault(c, "receivers", &o.receivers, 2)
			smokeDefault(c, "qos0-rate", &o.rate0, 200)
			smokeDefault(c, "qos1-rate", &o.rate1, 200)
			smokeDefault(c, "duration", &c.Duration, 2*time.Second)
			smokeDefault(c, "warmup", &c.Warmup, time.Second)
		}
		return runW8(ctx, c, o)
	}
}

// w8IdlePerUser is how many idle devices share a user (below
// --max-sessions-per-user and --max-conns-per-user, 100 each).
const w8IdlePerUser = 50

func runW8(ctx context.Context, c *common, o w8Opts) (report, error) {
	if o.idle < 0 || o.devices < 1 || o.receivers < 1 || o.window < 1 || o.window > 1000 || o.rate0 <= 0 || o.rate1 < 0 {
		return nil, fmt.Errorf("bench w8: --devices, --receivers, --qos0-rate must be positive, --window 1-1000, --idle and --qos1-rate not negative")
	}
	res := &W8Result{Idle: o.idle, Devices: o.devices, Receivers: o.receivers, Window: o.window}
	su, err := w8Logins(ctx, c, o)
	if err != nil || o.loginOnly {
		return nil, err
	}
	recvNames, devNames, idleNames := su.RecvNames, su.DevNames, su.IdleNames
	recvLogins, devLogins, idleLogins := su.Recv, su.Dev, su.Idle
	addr := devLogins[0].Gateway.MQTT
	if addr == "" {
		return nil, fmt.Errorf("bench w8: the server names no MQTT gateway: start it with --mqtt")
	}

	var (
		errMu     sync.Mutex
		errCounts = map[string]int{}
		closing   atomic.Bool
	)
	noteErr := func(msg string) {
		errMu.Lock()
		errCounts[msg]++
		errMu.Unlock()
	}

	// Receivers: TCP connections that count deliveries by QoS and sample
	// their latency (the text carries the publish time).
	var (
		received  [2]atomic.Int64
		measuring atomic.Bool
		readers   sync.WaitGroup
		recvs     []*w8Receiver
	)
	for _, lg := range recvLogins {
		rc, err := dialRawSize(ctx, "tcp", lg, nil, c.TLS, 64<<10)
		if err != nil {
			return nil, fmt.Errorf("bench w8: receiver: %w", err)
		}
		if _, err := rc.authenticate(lg.Token); err != nil {
			rc.close()
			return nil, fmt.Errorf("bench w8: receiver: %w", err)
		}
		r := &w8Receiver{rc: rc}
		recvs = append(recvs, r)
		readers.Go(func() {
			for {
				env, err := r.rc.read()
				if err != nil {
					if !closing.Load() {
						noteErr("receiver dropped: " + err.Error())
					}
					return
				}
				qos, ns, ok := parseW8(env.GetMessage().GetText())
				if !ok {
					continue
				}
				received[qos].Add(1)
				if measuring.Load() {
					r.mu.Lock()
					r.hist[qos].Record(time.Now().UnixNano() - ns)
					r.mu.Unlock()
				}
			}
		})
	}
	defer func() {
		closing.Store(true)
		for _, r := range recvs {
			r.rc.close()
		}
		readers.Wait()
	}()

	// Idle MQTT connections and the server's memory for them.
	srv0 := readProc(c.PID)
	var (
		idleMu    sync.Mutex
		idleConns []*mqttConn
		idleDrops atomic.Int64
	)
	c.logf("w8: opening %d idle MQTT connections to %s", o.idle, addr)
	_ = forEach(ctx, o.idle, 50, func(ctx context.Context, i int) error {
		mc, err := dialMQTT(ctx, addr, idleNames[i/w8IdlePerUser], idleLogins[i].Token, fmt.Sprintf("d%d", i), c.TLS)
		if err != nil {
			noteErr("idle connect: " + err.Error())
			return nil
		}
		idleMu.Lock()
		idleConns = append(idleConns, mc)
		idleMu.Unlock()
		readers.Go(func() {
			for {
				if _, err := mc.read(); err != nil {
					if !closing.Load() {
						idleDrops.Add(1)
					}
					return
				}
			}
		})
		return nil
	})
	defer func() {
		closing.Store(true)
		for _, mc := range idleConns {
			mc.close()
		}
	}()
	res.IdleConnected = len(idleConns)
	sleepCtx(ctx, 2*time.Second) // let the server settle
	srv1 := readProc(c.PID)
	if srv0.Valid && srv1.Valid && res.IdleConnected > 0 {
		res.ServerMeasured = true
		res.RSSBeforeMiB = float64(srv0.RSS) / (1 << 20)
		res.RSSIdleMiB = float64(srv1.RSS) / (1 << 20)
		res.RSSPerConnKB = float64(srv1.RSS-srv0.RSS) / 1024 / float64(res.IdleConnected)
	}
	c.logf("w8: %d idle connections open", res.IdleConnected)

	// Publishing devices.
	devs := make([]*w8Device, o.devices)
	for i, lg := range devLogins {
		mc, err := dialMQTT(ctx, addr, devNames[i], lg.Token, "dev", c.TLS)
		if err != nil {
			return nil, fmt.Errorf("bench w8: device: %w", err)
		}
		d := &w8Device{mc: mc, topic: "magpie/to/user/" + recvNames[i%o.receivers], sem: make(chan struct{}, o.window), sent: map[uint16]int64{}}
		devs[i] = d
		readers.Go(func() { d.readLoop(&closing, &measuring, noteErr) })
	}
	defer func() {
		closing.Store(true)
		for _, d := range devs {
			d.mc.close()
		}
	}()

	for _, qos := range []int{1, 0} {
		p := W8Pass{QoS: qos}
		rate := o.rate0
		if qos == 1 {
			rate = o.rate1
		}
		p.Rate = rate
		c.logf("w8: QoS %d pass: warm-up %v, window %v", qos, c.Warmup, c.Duration)
		recv0 := received[qos].Load()
		var stop atomic.Bool
		var senders sync.WaitGroup
		var sentAll, sentWin atomic.Int64
		for _, d := range devs {
			d.acked.Store(0)
			senders.Go(func() {
				var interval time.Duration
				if rate > 0 {
					interval = time.Duration(float64(time.Second) * float64(o.devices) / rate)
				}
				next := time.Now()
				for !stop.Load() {
					if interval > 0 {
						next = next.Add(interval)
						if wait := time.Until(next); wait > 0 {
							time.Sleep(wait)
						}
					}
					var pid uint16
					if qos == 1 {
						pid = d.take()
					}
					now := time.Now().UnixNano()
					if qos == 1 {
						d.mu.Lock()
						d.sent[pid] = now
						d.mu.Unlock()
					}
					if err := d.mc.publish(d.topic, byte(qos), pid, fmt.Sprintf("w8 %d %d", qos, now)); err != nil {
						if !closing.Load() {
							noteErr("publish: " + err.Error())
						}
						return
					}
					sentAll.Add(1)
					if measuring.Load() {
						sentWin.Add(1)
					}
				}
			})
		}
		sleepCtx(ctx, c.Warmup)
		srvA, genA := readProc(c.PID), readProc(selfPID)
		recvA := received[qos].Load()
		var ackA int64
		for _, d := range devs {
			ackA += d.acked.Load()
		}
		measuring.Store(true)
		sleepCtx(ctx, c.Duration)
		measuring.Store(false)
		srvB, genB := readProc(c.PID), readProc(selfPID)
		recvB := received[qos].Load()
		stop.Store(true)
		for _, d := range devs {
			d.release() // wake senders blocked on the window
		}
		senders.Wait()
		sleepCtx(ctx, 2*time.Second) // settle
		var ackB, ackHist = int64(0), Histogram{}
		for _, d := range devs {
			ackB += d.acked.Load()
			d.mu.Lock()
			ackHist.Merge(&d.ackHist)
			d.ackHist.Reset()
			d.mu.Unlock()
		}
		p.WindowS = srvB.At.Sub(srvA.At).Seconds()
		p.Sent, p.Recv = sentWin.Load(), recvB-recvA
		p.MsgRate = float64(p.Recv) / p.WindowS
		total := received[qos].Load() - recv0
		if qos == 1 {
			p.Acked = ackB - ackA // acked over the whole pass minus before the window: close enough
			p.Lost = max(0, ackB-total)
			p.AckLatency = ackHist.Summarize()
		} else {
			p.Lost = max(0, sentAll.Load()-total)
		}
		p.DeliveryLatency = w8Latency(recvs, qos)
		if p.Recv > 0 {
			gen := deltaCPU(genA, genB)
			p.GenCores = gen.Cores
			p.GenCPUUs = float64(gen.CPU.Microseconds()) / float64(p.Recv)
			if srvA.Valid && srvB.Valid {
				srv := deltaCPU(srvA, srvB)
				p.ServerCores = srv.Cores
				p.ServerCPUUs = float64(srv.CPU.Microseconds()) / float64(p.Recv)
			}
		}
		res.Passes = append(res.Passes, p)
	}
	res.IdleDropped = idleDrops.Load()
	errMu.Lock()
	res.Errors = appendErrorCounts(res.Errors, errCounts)
	errMu.Unlock()
	return res, nil
}

// w8Setup is W8's users and logins, kept in a --tokens file.
type w8Setup struct {
	RecvNames, DevNames, IdleNames []string
	Recv, Dev, Idle                []login
}

// w8Logins registers and logs in the receivers, the devices and the idle
// devices (one login each: a client id is a device), or reads them from
// --tokens.
func w8Logins(ctx context.Context, c *common, o w8Opts) (*w8Setup, error) {
	su := new(w8Setup)
	if o.tokens != "" {
		if found, err := readTokens(o.tokens, su); found {
			if err != nil || len(su.Recv) != o.receivers || len(su.Dev) != o.devices || len(su.Idle) != o.idle {
				return nil, fmt.Errorf("bench w8: --tokens %s: not the logins of --receivers %d --devices %d --idle %d (%v)", o.tokens, o.receivers, o.devices, o.idle, err)
			}
			c.logf("w8: reusing the logins of %s", o.tokens)
			return su, nil
		}
	}
	hc := c.httpClient(30*time.Second, 8)
	name := func(kind string, i int) string { return fmt.Sprintf("%s_w8%s_%d", c.UsersPrefix, kind, i) }
	for i := range o.receivers {
		su.RecvNames = append(su.RecvNames, name("r", i))
	}
	for i := range o.devices {
		su.DevNames = append(su.DevNames, name("d", i))
	}
	for i := range (o.idle + w8IdlePerUser - 1) / w8IdlePerUser {
		su.IdleNames = append(su.IdleNames, name("i", i))
	}
	all := append(append(append([]string(nil), su.RecvNames...), su.DevNames...), su.IdleNames...)
	c.logf("w8: registering %d users, logging in %d devices", len(all), o.receivers+o.devices+o.idle)
	if err := registerUsers(ctx, c, all, 4); err != nil {
		return nil, fmt.Errorf("bench w8: register: %w", err)
	}
	var err error
	if su.Recv, err = loginUsers(ctx, hc, c.Server, su.RecvNames, "w8", 4); err != nil {
		return nil, fmt.Errorf("bench w8: login: %w", err)
	}
	if su.Dev, err = loginUsers(ctx, hc, c.Server, su.DevNames, "dev", 4); err != nil {
		return nil, fmt.Errorf("bench w8: login: %w", err)
	}
	su.Idle = make([]login, o.idle)
	if err := forEach(ctx, o.idle, 4, func(ctx context.Context, i int) error {
		var err error
		su.Idle[i], err = loginUser(ctx, hc, c.Server, su.IdleNames[i/w8IdlePerUser], fmt.Sprintf("d%d", i))
		return err
	}); err != nil {
		return nil, fmt.Errorf("bench w8: login: %w", err)
	}
	if o.tokens != "" {
		if err := writeTokens(o.tokens, su); err != nil {
			return nil, fmt.Errorf("bench w8: --tokens: %w", err)
		}
	}
	return su, nil
}

// w8Receiver is a receiving user's connection; its reader records the
// latency of what it reads during a window.
type w8Receiver struct {
	rc   *rawConn
	mu   sync.Mutex
	hist [2]Histogram // by QoS
}

// w8Latency merges (and resets) the receivers' latency histograms of one QoS.
func w8Latency(recvs []*w8Receiver, qos int) Summary {
	var h Histogram
	for _, r := range recvs {
		r.mu.Lock()
		h.Merge(&r.hist[qos])
		r.hist[qos].Reset()
		r.mu.Unlock()
	}
	return h.Summarize()
}

// parseW8 reads "w8 <qos> <unix ns>", the text W8 sends.
func parseW8(text string) (qos int, ns int64, ok bool) {
	rest, found := strings.CutPrefix(text, "w8 ")
	if !found || len(rest) < 3 || (rest[0] != '0' && rest[0] != '1') || rest[1] != ' ' {
		return 0, 0, false
	}
	ns, err := strconv.ParseInt(rest[2:], 10, 64)
	return int(rest[0] - '0'), ns, err == nil
}

// w8Device is a publishing device: QoS 1 PUBLISHes hold a slot of sem
// and a packet id until their PUBACK.
type w8Device struct {
	mc      *mqttConn
	topic   string
	sem     chan struct{}
	acked   atomic.Int64
	mu      sync.Mutex
	sent    map[uint16]int64 // packet id → publish time
	nextPID uint16
	ackHist Histogram
}

// take waits for a slot of the window and returns a free packet id.
func (d *w8Device) take() uint16 {
	d.sem <- struct{}{}
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		d.nextPID++
		if _, used := d.sent[d.nextPID]; d.nextPID != 0 && !used {
			return d.nextPID
		}
	}
}

// release frees every slot, so a sender blocked in take wakes up (the
// pass is over).
func (d *w8Device) release() {
	for {
		select {
		case <-d.sem:
		default:
			return
		}
	}
}

func (d *w8Device) readLoop(closing, measuring *atomic.Bool, noteErr func(string)) {
	for {
		pk, err := d.mc.read()
		if err != nil {
			if !closing.Load() {
				noteErr("device dropped: " + err.Error())
			}
			return
		}
		if pk.FixedHeader.Type != 4 { // PUBACK
			continue
		}
		now := time.Now().UnixNano()
		d.mu.Lock()
		at, ok := d.sent[pk.PacketID]
		delete(d.sent, pk.PacketID)
		if ok && measuring.Load() {
			d.ackHist.Record(now - at)
		}
		d.mu.Unlock()
		if ok {
			if pk.ReasonCode != 0 {
				noteErr(fmt.Sprintf("PUBACK reason %#x", pk.ReasonCode))
			}
			d.acked.Add(1)
			select {
			case <-d.sem:
			default:
			}
		}
	}
}

func (r *W8Result) problems() []string {
	var out []string
	if r.IdleConnected < r.Idle {
		out = append(out, fmt.Sprintf("%d of %d idle connections failed", r.Idle-r.IdleConnected, r.Idle))
	}
	if r.IdleDropped > 0 {
		out = append(out, fmt.Sprintf("%d idle connections dropped", r.IdleDropped))
	}
	for _, p := range r.Passes {
		if p.Recv == 0 {
			out = append(out, fmt.Sprintf("QoS %d: nothing received", p.QoS))
		}
		if p.QoS == 1 && p.Lost > 0 {
			out = append(out, fmt.Sprintf("QoS 1: %d acknowledged messages never delivered", p.Lost))
		}
	}
	return append(out, r.Errors...)
}

func (r *W8Result) table(w io.Writer) {
	t := newTable(w)
	t.row("W8 MQTT", "")
	t.row("idle connections", fmt.Sprintf("%d of %d (%d dropped)", r.IdleConnected, r.Idle, r.IdleDropped))
	if r.ServerMeasured {
		t.row("server RSS", fmt.Sprintf("%.1f → %.1f MiB, %.2f KiB per idle connection", r.RSSBeforeMiB, r.RSSIdleMiB, r.RSSPerConnKB))
	}
	t.row("devices → receivers", fmt.Sprintf("%d → %d, QoS 1 window %d", r.Devices, r.Receivers, r.Window))
	for _, p := range r.Passes {
		offered := "closed loop"
		if p.Rate > 0 {
			offered = fmt.Sprintf("offered %.0f/s", p.Rate)
		}
		t.row(fmt.Sprintf("QoS %d", p.QoS), fmt.Sprintf("%.0f msg/s received (%s), %d sent, %d received, %d lost", p.MsgRate, offered, p.Sent, p.Recv, p.Lost))
		if p.QoS == 1 {
			t.row("  publish → PUBACK p50/p99/p99.9/max", w8Lat(p.AckLatency))
		}
		t.row("  publish → delivery p50/p99/p99.9/max", w8Lat(p.DeliveryLatency))
		t.row("  CPU per message", fmt.Sprintf("server %.1f µs (%.2f cores), generator %.1f µs (%.2f cores)", p.ServerCPUUs, p.ServerCores, p.GenCPUUs, p.GenCores))
	}
	for _, e := range r.Errors {
		t.row("error", e)
	}
	t.flush()
}

func w8Lat(s Summary) string {
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f ms (%d samples)", s.P50, s.P99, s.P999, s.Max, s.Count)
}
