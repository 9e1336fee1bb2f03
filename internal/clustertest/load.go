package clustertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/checker"
	"github.com/magpie-im/magpie/proto/wire"
)

// LoadConfig sizes the checked load.
type LoadConfig struct {
	Servers        []string // logic node base URLs; devices alternate between them
	Users          int      // default 24
	DevicesPerUser int      // default 2
	Rate           float64  // messages per second per device; default 4
	GroupSize      int      // users per group; 0: no groups
	SendTimeout    time.Duration
	// StuckAfter: a device not ready this long is replaced by a new Client
	// with the same device id and cursors (see Device.replace). 0: 10s.
	StuckAfter time.Duration
	// MQTTUsers adds users with one MQTT device each (mqtt.go); the
	// gateways need --mqtt (Config.MQTT). 0: none.
	MQTTUsers int
	// History, if set, receives the checker's history as it is recorded
	// (checker.Recorder.Record; `magpie check` reads it).
	History io.Writer
}

// Load is users with devices exchanging messages, recorded for the checker.
type Load struct {
	cfg    LoadConfig
	Rec    *checker.Recorder
	users  []string
	groups map[string][]string // group id → member names
	devs   []*Device
	hcs    []*http.Client // one failover client per starting server
	prefix string         // of the user names: random per run

	mqttUsers []string      // users whose one device is an MQTT device
	mqtt      []*MQTTDevice // their devices
	mqttGroup string        // the group with the MQTT users and two others

	phase    atomic.Int32 // checker.Phase
	stop     chan struct{}
	senders  sync.WaitGroup
	watch    sync.WaitGroup
	stopOnce sync.Once
	closing  atomic.Bool

	churn atomic.Pointer[churnState] // scenario 11, once it started

	Replaced atomic.Int64 // Clients replaced by the watchdog
	whyMu    sync.Mutex
	why      []string // per replacement: the device, its state and the Client's last error
	// DupAcks counts ACKs marked duplicate: a retry of a message that was
	// already stored, answered with its original seq.
	DupAcks atomic.Int64
}

// Device is one SDK Client and its sender.
type Device struct {
	load    *Load
	name    string
	user    string
	idx     int
	cursors *memCursors

	mu       sync.Mutex
	c        *client.Client
	state    client.State
	since    time.Time // of the current state
	closed   bool
	replaced int
	gen      int   // of the newest Client (newClient)
	err      error // the current Client's last state error (OnState)
}

const password = "cluster-test-password"

// StartLoad registers the users, connects their devices (logins alternate
// between the servers) and starts sending.
func StartLoad(ctx context.Context, cfg LoadConfig) (*Load, error) {
	if cfg.Users == 0 {
		cfg.Users = 24
	}
	if cfg.DevicesPerUser == 0 {
		cfg.DevicesPerUser = 2
	}
	if cfg.Rate == 0 {
		cfg.Rate = 4
	}
	if cfg.SendTimeout == 0 {
		cfg.SendTimeout = 60 * time.Second
	}
	if cfg.StuckAfter == 0 {
		cfg.StuckAfter = 10 * time.Second
	}
	l := &Load{cfg: cfg, Rec: checker.New(), stop: make(chan struct{}), groups: map[string][]string{}}
	if cfg.History != nil {
		_ = l.Rec.Record(cfg.History) // write errors come back from Record(nil) at the end
	}
	for i := range cfg.Servers {
		l.hcs = append(l.hcs, failoverClient(cfg.Servers, i))
	}
	l.prefix = "u" + randHex(3)
	for i := range cfg.Users {
		u := fmt.Sprintf("%s_%02d", l.prefix, i)
		if _, err := client.Register(ctx, cfg.Servers[i%len(cfg.Servers)], u, password); err != nil {
			return nil, fmt.Errorf("register %s: %w", u, err)
		}
		l.users = append(l.users, u)
	}
	for _, u := range l.users {
		for k := range cfg.DevicesPerUser {
			d := &Device{load: l, name: fmt.Sprintf("%s-d%d", u, k), user: u, idx: len(l.devs), cursors: newMemCursors()}
			l.Rec.Device(d.name, u, false)
			l.devs = append(l.devs, d)
		}
	}
	// Connect a few at a time: logins hash passwords.
	sem := make(chan struct{}, 8)
	errs := make(chan error, len(l.devs))
	var wg sync.WaitGroup
	for _, d := range l.devs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- d.connect(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			l.Close()
			return nil, err
		}
	}
	if cfg.GroupSize > 1 {
		if err := l.makeGroups(ctx); err != nil {
			l.Close()
			return nil, err
		}
	}
	if cfg.MQTTUsers > 0 {
		if err := l.startMQTT(ctx); err != nil {
			l.Close()
			return nil, err
		}
		// The MQTT users and the first two users, open (MQTTChurn leaves
		// and rejoins it).
		members := append([]string{l.users[0], l.users[min(1, len(l.users)-1)]}, l.mqttUsers...)
		g, err := l.devs[0].client().CreateGroup(ctx, client.NewGroup{Name: "mqtt", Members: members[1:], JoinPolicy: client.JoinOpen})
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("create the mqtt group: %w", err)
		}
		l.groups[g.ID], l.mqttGroup = members, g.ID
	}
	l.watch.Add(1)
	go l.watchdog()
	for _, d := range l.devs {
		l.senders.Add(1)
		go d.sendLoop()
	}
	for _, d := range l.mqtt {
		l.senders.Add(1)
		go d.sendLoop()
	}
	return l, nil
}

// makeGroups puts consecutive users into groups of GroupSize.
func (l *Load) makeGroups(ctx context.Context) error {
	n := l.cfg.GroupSize
	for i := 0; i+n <= len(l.users); i += n {
		members := l.users[i : i+n]
		owner := l.devs[i*l.cfg.DevicesPerUser]
		g, err := owner.client().CreateGroup(ctx, client.NewGroup{Name: fmt.Sprintf("g%d", i/n), Members: members[1:]})
		if err != nil {
			return fmt.Errorf("create group: %w", err)
		}
		l.groups[g.ID] = append([]string(nil), members...)
	}
	return nil
}

// Groups reports how many groups the load sends to.
func (l *Load) Groups() int { return len(l.groups) }

// Devices returns the devices.
func (l *Load) Devices() []*Device { return l.devs }

func (d *Device) newClient() *client.Client {
	l := d.load
	// Alternate the starting logic node by device and by replacement, so
	// logins spread and a dead node is not retried first forever.
	d.mu.Lock()
	i := (d.idx + d.replaced + d.gen) % len(l.cfg.Servers)
	d.gen++
	gen := d.gen
	d.mu.Unlock()
	return client.New(client.Options{
		Server: l.cfg.Servers[i], Username: d.user, Password: password, Device: d.name,
		Transport: "tcp", HTTPClient: l.hcs[i],
		OnMessage: d.onMessage, OnReceipt: d.onReceipt,
		OnState:    func(st client.State, err error) { d.onState(gen, st, err) },
		BackoffMin: 100 * time.Millisecond, BackoffMax: 2 * time.Second,
		Cursors: d.cursors,
	})
}

func (d *Device) connect(ctx context.Context) error {
	c := d.newClient()
	d.mu.Lock()
	d.c, d.since = c, time.Now()
	d.mu.Unlock()
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = c.Connect(cctx)
		cancel()
		if err == nil {
			return nil
		}
		var e *client.Error
		if errors.As(err, &e) && e.Code.Action() == wire.GiveUp {
			break
		}
		c.Close()
		c = d.newClient()
		d.mu.Lock()
		d.c = c
		d.mu.Unlock()
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("connect %s: %w", d.name, err)
}

func (d *Device) client() *client.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.c
}

// Ready reports whether the device's Client is connected and synced.
func (d *Device) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state == client.StateReady
}

// onState follows the state of the device's current Client only: a
// closed Client's last callbacks may run after its successor's (flap,
// replace).
func (d *Device) onState(gen int, st client.State, err error) {
	d.mu.Lock()
	if gen == d.gen {
		d.state, d.since, d.err = st, time.Now(), err
	}
	d.mu.Unlock()
}

func (d *Device) onMessage(m client.Message) { d.load.showMessage(d.name, m) }

// showMessage records that device showed m, and the membership changes
// of a group event.
func (l *Load) showMessage(device string, m client.Message) {
	if ev := m.Event; ev != nil {
		// The group events bound the members' windows (scenario 11).
		switch ev.Type {
		case "created":
			l.Rec.Member(m.ConversationID, ev.Actor, true, m.Seq)
			fallthrough
		case "added", "joined":
			for _, u := range ev.Usernames {
				l.Rec.Member(m.ConversationID, u, true, m.Seq)
			}
		case "left", "removed":
			for _, u := range ev.Usernames {
				l.Rec.Member(m.ConversationID, u, false, m.Seq)
			}
		}
	}
	l.Rec.Shown(device, checker.Message{Conv: m.ConversationID, Seq: m.Seq, ClientMsgID: harnessID(m.ClientMsgID, m.Text), Sender: m.Sender, Text: m.Text},
		checker.Phase(l.phase.Load()), time.Now())
}

func (d *Device) onReceipt(r client.Receipt) {
	d.load.Rec.Receipt(d.name, r.ConversationID, r.Username, r.Kind == client.Read, r.Seq)
}

// replace swaps a stuck Client for a new one with the same device id and
// cursors. A safety net, counted in Load.Replaced (and reported): an SDK
// that kept redialling a dead or draining gateway without logging in again
// needed it after every gateway fault; a correct SDK never does.
func (d *Device) replace(ctx context.Context) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	old := d.c
	d.replaced++
	why := fmt.Sprintf("%s at %s (%v: %v)", d.name, time.Now().UTC().Format("15:04:05.000"), d.state, d.err)
	d.mu.Unlock()
	d.load.whyMu.Lock()
	d.load.why = append(d.load.why, why)
	d.load.whyMu.Unlock()
	old.Close()
	// Close returns before the old Client's callback goroutine has run
	// what was queued (documented); its cursor saves must land before the
	// new Client loads the cursors, or the new one would show them again.
	time.Sleep(300 * time.Millisecond)
	d.load.Replaced.Add(1)
	c := d.newClient()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		c.Close()
		return
	}
	d.c, d.state, d.since = c, client.StateConnecting, time.Now()
	d.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.Connect(cctx); err != nil {
		d.mu.Lock()
		d.state, d.since = client.StateClosed, time.Now()
		d.mu.Unlock()
	}
}

// ReplacedWhy lists the watchdog's replacements: the device, when, and
// the state and last error of the Client it replaced.
func (l *Load) ReplacedWhy() []string {
	l.whyMu.Lock()
	defer l.whyMu.Unlock()
	return slices.Clone(l.why)
}

func (l *Load) watchdog() {
	defer l.watch.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for range t.C {
		if l.closing.Load() {
			return
		}
		for _, d := range l.devs {
			d.mu.Lock()
			stuck := !d.closed && d.state != client.StateReady && time.Since(d.since) > l.cfg.StuckAfter
			if stuck {
				d.since = time.Now() // one replacement at a time
			}
			d.mu.Unlock()
			if stuck {
				go d.replace(ctx)
			}
		}
	}
}

func (d *Device) sendLoop() {
	l := d.load
	defer l.senders.Done()
	interval := time.Duration(float64(time.Second) / l.cfg.Rate)
	next := time.Now().Add(time.Duration(d.idx%10) * interval / 10)
	groups := make([]string, 0, len(l.groups))
	for id, ms := range l.groups {
		for _, m := range ms {
			if m == d.user {
				groups = append(groups, id)
			}
		}
	}
	for n := 0; ; n++ {
		if wait := time.Until(next); wait > 0 {
			select {
			case <-l.stop:
				return
			case <-time.After(wait):
			}
		}
		select {
		case <-l.stop:
			return
		default:
		}
		next = next.Add(interval)
		if time.Until(next) < -5*interval {
			next = time.Now() // fell behind during an outage: do not burst
		}
		req := client.SendRequest{ClientMsgID: fmt.Sprintf("%s-%d", d.name, n)}
		var members []string
		churnGroup, churnMembers := "", []string(nil)
		if n%4 == 1 {
			churnGroup, churnMembers = l.churnGroupOf(d.user, n)
		}
		if churnGroup != "" {
			req.ToGroup, members = churnGroup, churnMembers
			l.churn.Load().sends.Add(1)
		} else if len(groups) > 0 && n%4 == 3 {
			req.ToGroup = groups[(n/4)%len(groups)]
			members = l.groups[req.ToGroup]
		} else {
			// Each user talks to the next few users, so every pair has
			// traffic in both directions.
			me := 0
			for i, u := range l.users {
				if u == d.user {
					me = i
				}
			}
			peer := l.users[(me+1+n%3)%len(l.users)]
			if n%3 == 2 && me < len(l.mqttUsers) {
				peer = l.mqttUsers[me] // who sends to this user (MQTTDevice.sendLoop)
			}
			req.ToUser = peer
			members = []string{d.user, peer}
		}
		req.Text = "m " + req.ClientMsgID
		d.send(req, members)
	}
}

// send sends one message until it is ACKed, refused, or SendTimeout
// passes, retrying with the same client message id across Client
// replacements. It reports whether the ACK said duplicate (the id was
// stored before; the seq is the original one).
func (d *Device) send(req client.SendRequest, members []string) (duplicate bool) {
	l := d.load
	l.Rec.Invoke(req.ClientMsgID, d.name, members, time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.SendTimeout)
	defer cancel()
	for {
		c := d.client()
		ack, err := c.Send(ctx, req)
		if err == nil {
			l.Rec.Acked(req.ClientMsgID, ack.ConversationID, ack.Seq, time.Now())
			if ack.Duplicate {
				l.DupAcks.Add(1)
			}
			return ack.Duplicate
		}
		if ctx.Err() != nil {
			l.Rec.Ended(req.ClientMsgID, checker.Unknown)
			return false
		}
		var e *client.Error
		if errors.As(err, &e) && e.Code.Action() == wire.GiveUp {
			l.Rec.Ended(req.ClientMsgID, checker.Failed)
			if c := l.churn.Load(); c != nil && e.Code == wire.CodeNotMember {
				c.refused.Add(1) // a churn group the user just left
			}
			return false
		}
		// ErrClosed / ErrNotConnected: the Client was replaced or stopped;
		// retry with the same id on the current one.
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SplitUser finds a user whose devices are ready on two different
// gateways (scenario 10), or nil.
func (l *Load) SplitUser() (a, b *Device) {
	for i := 0; i+1 < len(l.devs); i += l.cfg.DevicesPerUser {
		x, y := l.devs[i], l.devs[i+1]
		gx, gy := x.client().Gateway(), y.client().Gateway()
		if x.Ready() && y.Ready() && gx != "" && gy != "" && gx != gy {
			return x, y
		}
	}
	return nil, nil
}

// SendSame sends each id from every one of devs at once (devices of one
// user, to the next user) and returns how many ACKs said duplicate.
func (l *Load) SendSame(ids []string, devs ...*Device) int {
	user := devs[0].user
	peer := l.users[0]
	for i, u := range l.users {
		if u == user {
			peer = l.users[(i+1)%len(l.users)]
		}
	}
	var dups atomic.Int64
	var wg sync.WaitGroup
	for _, id := range ids {
		for _, d := range devs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if d.send(client.SendRequest{ClientMsgID: id, ToUser: peer, Text: "same id " + id}, []string{user, peer}) {
					dups.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	return int(dups.Load())
}

// StopSending stops the senders and waits for the sends in flight.
func (l *Load) StopSending() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.senders.Wait()
}

// FinalSync switches to the sync phase and makes every device sync until
// it shows every acknowledged message it should, or d passes.
func (l *Load) FinalSync(ctx context.Context, d time.Duration) error {
	l.phase.Store(int32(checker.Sync))
	deadline := time.Now().Add(d)
	flapped := map[*MQTTDevice]time.Time{}
	for {
		// One pass over the history for every device: MissingOn per
		// device walked every send 400 times at the load profile.
		missing := l.Rec.MissingByDevice(time.Now())
		for _, dev := range l.devs {
			if missing[dev.name] > 0 && dev.Ready() {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_ = dev.client().Sync(sctx)
				cancel()
			}
		}
		// An MQTT device's sync is a reconnect: its persistent session
		// is caught up from the device's stored position.
		for _, dev := range l.mqtt {
			if missing[dev.name] > 0 && dev.Connected() && time.Since(flapped[dev]) > 10*time.Second {
				flapped[dev] = time.Now()
				dev.Flap(0)
			}
		}
		if l.Rec.Missing(time.Now()) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("devices still missing %d (message, device) pairs after %v", l.Rec.Missing(time.Now()), d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// FreshDevices logs one new device per user in, lets it sync from zero
// until it shows everything (or d passes), and closes it.
func (l *Load) FreshDevices(ctx context.Context, d time.Duration) error {
	var wg sync.WaitGroup
	users := append(slices.Clone(l.users), l.mqttUsers...)
	errs := make(chan error, len(users))
	sem := make(chan struct{}, 4)
	for i, u := range users {
		dev := &Device{load: l, name: u + "-fresh", user: u, idx: i, cursors: newMemCursors()}
		l.Rec.Device(dev.name, u, true)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := dev.connect(ctx); err != nil {
				errs <- err
				return
			}
			defer dev.client().Close()
			deadline := time.Now().Add(d)
			for {
				start := time.Now()
				if l.Rec.MissingOn(dev.name) == 0 {
					break
				}
				cost := time.Since(start)
				if time.Now().After(deadline) {
					errs <- fmt.Errorf("%s still misses %d messages after %v", dev.name, l.Rec.MissingOn(dev.name), d)
					return
				}
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_ = dev.client().Sync(sctx)
				cancel()
				// MissingOn holds the recorder's lock; four devices
				// polling it left none for their own syncs' recording.
				time.Sleep(max(200*time.Millisecond, 4*cost))
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Receipts marks every conversation read up to what one device of each
// user showed, then records the server's cursors for the checker.
func (l *Load) Receipts(ctx context.Context) error {
	for i := 0; i < len(l.devs); i += l.cfg.DevicesPerUser {
		d := l.devs[i]
		c := d.client()
		for conv, seq := range d.cursors.snapshot() {
			if err := c.MarkRead(ctx, conv, seq); err != nil {
				var e *client.Error
				if errors.As(err, &e) && e.Code == wire.CodeNotMember {
					continue // a churn group the user left (scenario 11)
				}
				return fmt.Errorf("mark read: %w", err)
			}
		}
		convs, err := c.Conversations(ctx)
		if err != nil {
			return fmt.Errorf("conversations: %w", err)
		}
		for _, cv := range convs {
			l.Rec.Cursors(checker.Cursor{
				User: d.user, Conv: cv.ID, Last: cv.LastSeq, Delivered: cv.DeliveredSeq, Read: cv.ReadSeq,
				PeerDelivered: cv.PeerDeliveredSeq, PeerRead: cv.PeerReadSeq, HasPeer: cv.Kind == "private",
			})
		}
	}
	return nil
}

// NotReady counts devices whose Client is not connected and synced.
func (l *Load) NotReady() int {
	n := 0
	for _, d := range l.devs {
		if !d.Ready() {
			n++
		}
	}
	return n
}

// Close stops everything. Safe to call twice.
func (l *Load) Close() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.closing.Store(true)
	l.watch.Wait()
	for _, d := range l.devs {
		d.mu.Lock()
		d.closed = true
		c := d.c
		d.mu.Unlock()
		if c != nil {
			c.Close()
		}
	}
	l.senders.Wait()
	for _, d := range l.mqtt {
		d.close()
	}
}

// memCursors is a client.CursorStore in memory, shared by the Clients a
// device goes through.
type memCursors struct {
	mu sync.Mutex
	m  map[string]uint64
}

func newMemCursors() *memCursors { return &memCursors{m: map[string]uint64{}} }

func (c *memCursors) Load() (map[string]uint64, error) { return c.snapshot(), nil }

func (c *memCursors) Save(conv string, seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if seq > c.m[conv] {
		c.m[conv] = seq
	}
	return nil
}

func (c *memCursors) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

var _ client.CursorStore = (*memCursors)(nil)

// failoverClient is an http.Client whose requests go to servers[start]
// and move on to the next server when one cannot be reached. The SDK
// takes a single server URL; this is how the test gives it several.
func failoverClient(servers []string, start int) *http.Client {
	ft := &failover{base: http.DefaultTransport}
	for i := range servers {
		u := servers[(start+i)%len(servers)]
		ft.hosts = append(ft.hosts, hostOf(u))
	}
	return &http.Client{Transport: ft, Timeout: 30 * time.Second}
}

type failover struct {
	base  http.RoundTripper
	hosts []string
	cur   atomic.Int32
}

func (f *failover) RoundTrip(req *http.Request) (*http.Response, error) {
	var lastErr error
	start := int(f.cur.Load())
	for i := range f.hosts {
		k := (start + i) % len(f.hosts)
		r := req.Clone(req.Context())
		r.URL.Host, r.Host = f.hosts[k], f.hosts[k]
		if req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r.Body = body
		}
		resp, err := f.base.RoundTrip(r)
		if err == nil && resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusServiceUnavailable {
			f.cur.Store(int32(k))
			return resp, nil
		}
		if err == nil {
			if i == len(f.hosts)-1 {
				return resp, nil
			}
			resp.Body.Close()
			lastErr = fmt.Errorf("HTTP %d from %s", resp.StatusCode, f.hosts[k])
			continue
		}
		lastErr = err
		if req.Context().Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil && p.Host != "" {
		return p.Host
	}
	return u
}
