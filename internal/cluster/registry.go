package cluster

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

// Registrar keeps one gateway's registry entry fresh.
type Registrar struct {
	kv   jetstream.KeyValue
	info func() *clusterpb.GatewayInfo
	ttl  time.Duration
	log  *slog.Logger

	// OnGap, if set before Run, is called (on Run's goroutine) after a
	// heartbeat succeeds following a silence longer than half the TTL:
	// logic nodes may have declared this gateway dead meanwhile and
	// deleted its presence entries, so the gateway writes them again.
	OnGap func()

	mu     sync.Mutex // guards lastOK
	lastOK time.Time
}

// NewRegistrar opens the registry bucket. info is called at every heartbeat
// for the gateway's current entry.
func NewRegistrar(ctx context.Context, nc *nats.Conn, replicas int, ttl time.Duration, info func() *clusterpb.GatewayInfo, log *slog.Logger) (*Registrar, error) {
	kv, err := keyValue(ctx, nc, bucketGateways, replicas, registryMaxAge(ttl))
	if err != nil {
		return nil, err
	}
	return &Registrar{kv: kv, info: info, ttl: ttl, log: log}, nil
}

// Put writes the entry once.
func (r *Registrar) Put(ctx context.Context) error {
	gi := r.info()
	gi.UpdatedMs = time.Now().UnixMilli()
	data, err := proto.Marshal(gi)
	if err != nil {
		return err
	}
	if _, err = r.kv.Put(ctx, gi.Id, data); err != nil {
		return err
	}
	r.mu.Lock()
	gap := !r.lastOK.IsZero() && time.Since(r.lastOK) > r.ttl/2
	r.lastOK = time.Now()
	r.mu.Unlock()
	if gap && r.OnGap != nil {
		r.OnGap()
	}
	return nil
}

// registryMaxAge is the max age of the registry bucket for a registry
// TTL: the NATS server drops an entry, or the delete marker a clean stop
// leaves, this long after it was written. Gateway ids are random per start
// by default, so without it the keys of crashed gateways (and the markers
// of stopped ones) would pile up forever. A live gateway re-puts its entry
// every TTL/3, and logic nodes count an entry older than the TTL as dead
// whatever the bucket holds, so only entries that are dead already
// expire; a gateway that was only cut off writes its entry again with its
// next heartbeat. Expiry is silent (no marker, no watch event): the logic
// nodes' own sweep and probes decide who is dead.
func registryMaxAge(ttl time.Duration) time.Duration { return 2 * ttl }

// Run re-puts the entry every ttl/3 until ctx ends, then deletes it.
func (r *Registrar) Run(ctx context.Context) {
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = r.kv.Delete(dctx, r.info().Id)
			cancel()
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, r.ttl/3)
			if err := r.Put(pctx); err != nil && ctx.Err() == nil {
				r.log.Warn("registry heartbeat failed", "err", err)
			}
			cancel()
		}
	}
}

// Strategy picks a gateway for a login.
type Strategy string

const (
	RoundRobin     Strategy = "round-robin"
	Random         Strategy = "random"
	ConsistentHash Strategy = "hash"
	LeastConns     Strategy = "least-conns"
)

// ErrNoGateway means no live gateway is registered.
var ErrNoGateway = errors.New("cluster: no live gateway")

// Registry is a logic node's view of the live gateways, kept by watching
// the registry bucket. A gateway whose entry was not refreshed within the
// TTL (by the local clock of this node) is suspect; before it is declared
// dead, the bucket itself is asked (recheck), since this node's view can
// be stale where the bucket is not.
type Registry struct {
	ttl time.Duration
	log *slog.Logger
	rr  atomic.Uint64
	nc  *nats.Conn
	kv  jetstream.KeyValue // nil in unit tests: no recheck
	// current: this node's view of the bucket holds every update made
	// before this moment (the write time of the last canary that came
	// back), in unix nanoseconds; 0: no canary back yet.
	current atomic.Int64

	mu       sync.RWMutex // guards gateways, buried and changed
	gateways map[string]gwState
	buried   map[string]int64 // gateway → UpdatedMs of its entry when declared dead
	changed  chan struct{}    // closed (and replaced) at every entry applied: WaitAlive

	onDead func(id string)
	clock  func() time.Time // nil: time.Now; tests pass their own to step past the TTL

	wg sync.WaitGroup // the watch, sweep and probe goroutines
}

type gwState struct {
	info   *clusterpb.GatewayInfo
	seen   time.Time
	rev    uint64 // the bucket revision info came from
	misses int    // consecutive probes answered "no responders"
}

// WatchRegistry starts watching the registry bucket until ctx ends. onDead,
// if set, is called (from the watch, sweep or probe goroutine) when a
// gateway disappears. The goroutines it starts end with ctx; Wait waits
// for them.
func WatchRegistry(ctx context.Context, nc *nats.Conn, replicas int, ttl time.Duration, onDead func(string), log *slog.Logger) (*Registry, error) {
	kv, err := keyValue(ctx, nc, bucketGateways, replicas, registryMaxAge(ttl))
	if err != nil {
		return nil, err
	}
	r := &Registry{ttl: ttl, log: log, nc: nc, kv: kv, gateways: map[string]gwState{}, buried: map[string]int64{}, onDead: onDead}
	ready := make(chan struct{})
	r.goTracked(func() {
		watchBucketAlive(ctx, kv, ready, log, r.update, func(w time.Time) { r.current.Store(w.UnixNano()) })
	})
	select {
	case <-ready:
	case <-ctx.Done():
		r.wg.Wait()
		return nil, ctx.Err()
	}
	r.goTracked(func() { r.sweep(ctx) })
	r.goTracked(func() { r.probe(ctx) })
	return r, nil
}

func (r *Registry) now() time.Time {
	if r.clock != nil {
		return r.clock()
	}
	return time.Now()
}

func (r *Registry) goTracked(fn func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
	}()
}

// Wait blocks until the goroutines WatchRegistry started have returned,
// which they do once its ctx ended.
func (r *Registry) Wait() { r.wg.Wait() }

// watchBucket feeds every update of kv to fn until ctx ends, closing ready
// once the initial values are in. A watcher that ends early is started
// again, replaying the bucket.
//
// A watcher can also stall without ending: its ordered consumer lives on
// one NATS server, and when that server dies the consumer must be
// recreated on another, which fails while the stream elects a leader. So
// each watcher writes a canary key every canaryEvery and expects to see
// it come back; a canary missing for canaryStall restarts the watcher.
func watchBucket(ctx context.Context, kv jetstream.KeyValue, ready chan struct{}, log *slog.Logger, fn func(jetstream.KeyValueEntry)) {
	watchBucketAlive(ctx, kv, ready, log, fn, nil)
}

// watchBucketAlive is watchBucket that also calls alive each time the
// watcher's own canary comes back, with the time it was written: the view
// holds every update made before that moment. It returns once ctx ended
// and its canary writer has stopped.
func watchBucketAlive(ctx context.Context, kv jetstream.KeyValue, ready chan struct{}, log *slog.Logger, fn func(jetstream.KeyValueEntry), alive func(written time.Time)) {
	once := sync.Once{}
	canary := canaryPrefix + nats.NewInbox()[len("_INBOX."):]
	var (
		mu       sync.Mutex // guards pending
		pending  time.Time  // when the oldest canary not yet seen back was written
		restarts = make(chan struct{}, 1)
		writer   sync.WaitGroup
	)
	writer.Add(1)
	defer writer.Wait()
	go func() {
		defer writer.Done()
		t := time.NewTicker(canaryEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				// ctx has ended: the purge gets its own short budget.
				dctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = kv.Purge(dctx, canary)
				cancel()
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(ctx, canaryEvery)
			_, err := kv.Put(pctx, canary, []byte(time.Now().Format(time.RFC3339Nano)))
			cancel()
			mu.Lock()
			if err == nil && pending.IsZero() {
				pending = time.Now()
			}
			stalled := !pending.IsZero() && time.Since(pending) > canaryStall
			if stalled {
				pending = time.Time{}
			}
			mu.Unlock()
			if stalled {
				log.Warn("bucket watch stalled; restarting it", "bucket", kv.Bucket())
				select {
				case restarts <- struct{}{}:
				default:
				}
			}
		}
	}()
	for ctx.Err() == nil {
		w, err := kv.WatchAll(ctx)
		if errors.Is(err, nats.ErrConnectionClosed) {
			return // the node is shutting down
		}
		if err != nil {
			log.Warn("bucket watch failed; retrying", "bucket", kv.Bucket(), "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		for open := true; open; {
			select {
			case <-ctx.Done():
				open = false
			case <-restarts:
				open = false
			case e, ok := <-w.Updates():
				switch {
				case !ok:
					open = false
				case e == nil: // initial values done
					once.Do(func() { close(ready) })
				case strings.HasPrefix(e.Key(), canaryPrefix):
					if e.Key() == canary {
						mu.Lock()
						pending = time.Time{}
						mu.Unlock()
						if w, err := time.Parse(time.RFC3339Nano, string(e.Value())); err == nil && alive != nil {
							alive(w)
						}
					}
				default:
					fn(e)
				}
			}
		}
		_ = w.Stop()
	}
}

// Canary keys never collide with entries: gateway ids have no '.', and
// presence keys start with 'u'.
const canaryPrefix = "canary."

var (
	canaryEvery = 2 * time.Second
	canaryStall = 6 * time.Second
)

// update applies one registry bucket entry.
func (r *Registry) update(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		r.remove(e.Key())
		return
	}
	var gi clusterpb.GatewayInfo
	if proto.Unmarshal(e.Value(), &gi) != nil || gi.Id == "" {
		return
	}
	seen := r.now()
	// An old entry replayed at start must not look fresh.
	if up := time.UnixMilli(gi.UpdatedMs); up.Before(seen) && seen.Sub(up) > r.ttl {
		seen = up
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.buried[gi.Id]; ok {
		if gi.UpdatedMs <= b {
			return // a replay of the entry we already declared dead
		}
		delete(r.buried, gi.Id) // a fresh heartbeat: it lives (again)
	}
	r.gateways[gi.Id] = gwState{info: &gi, seen: seen, rev: e.Revision()}
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// WaitAlive returns once gateway id is alive in this node's view, or with
// ctx's error.
func (r *Registry) WaitAlive(ctx context.Context, id string) error {
	for {
		r.mu.Lock()
		g, ok := r.gateways[id]
		if ok && r.fresh(g.seen) {
			r.mu.Unlock()
			return nil
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// remove forgets a gateway whose entry was deleted (it stopped cleanly).
func (r *Registry) remove(id string) { r.forget(id, false) }

// forget drops a gateway and tells onDead. bury keeps replays of its last
// entry (a restarted watcher, a late heartbeat already in flight) from
// bringing it back; only a newer heartbeat does.
func (r *Registry) forget(id string, bury bool) {
	r.mu.Lock()
	g, had := r.gateways[id]
	delete(r.gateways, id)
	if had && bury {
		r.buried[id] = g.info.UpdatedMs
	}
	r.mu.Unlock()
	if had && r.onDead != nil {
		r.onDead(id)
	}
	if had && bury && r.nc != nil {
		// If the gateway was only cut off, it hears this once it is back
		// and writes its presence entries again; onDead's deletes were
		// acknowledged before this publish, so they cannot overtake it.
		_ = r.nc.Publish(buriedSubject(id), nil)
	}
}

func (r *Registry) sweep(ctx context.Context) {
	t := time.NewTicker(r.ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.sweepOnce(ctx)
		}
	}
}

// sweepOnce buries the gateways that were silent for the TTL in this
// node's view and are silent in the bucket too.
func (r *Registry) sweepOnce(ctx context.Context) {
	var suspects []string
	r.mu.RLock()
	for id, g := range r.gateways {
		if !r.fresh(g.seen) {
			suspects = append(suspects, id)
		}
	}
	r.mu.RUnlock()
	for _, id := range suspects {
		if r.recheck(ctx, id) {
			continue
		}
		r.log.Info("gateway expired", "gateway", id)
		r.forget(id, true)
	}
	r.pruneBuried(r.now())
}

// recheck asks the bucket itself about a gateway this node's view holds as
// silent, and reports whether it lives after all (its state is then
// refreshed). The view is this node's own and can lag where the bucket
// does not: after the process was paused (SIGSTOP, a frozen VM) its timers
// fire before its watch has delivered the heartbeats written meanwhile, so
// every gateway looks silent for as long as the pause lasted; a watch can
// also fall behind. A revision newer than the view's, or a heartbeat
// younger than the TTL, is a heartbeat seen now. Only an entry that is
// gone (deleted, or expired by the bucket's max age) or unchanged and old
// makes the gateway dead. A failed read proves nothing, like a probe over
// a broken link: the gateway is left to the next sweep, and the probes
// still catch a crash meanwhile.
func (r *Registry) recheck(ctx context.Context, id string) bool {
	if r.kv == nil {
		return false
	}
	gctx, cancel := context.WithTimeout(ctx, max(r.ttl/4, 100*time.Millisecond))
	e, err := r.kv.Get(gctx, id)
	cancel()
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false
	}
	if err != nil {
		r.log.Debug("registry recheck failed", "gateway", id, "err", err)
		return ctx.Err() == nil
	}
	var gi clusterpb.GatewayInfo
	if proto.Unmarshal(e.Value(), &gi) != nil || gi.Id != id {
		return false
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	g, ok := r.gateways[id]
	if !ok {
		return true // forgotten meanwhile (deleted): nothing to bury
	}
	if e.Revision() <= g.rev && now.Sub(time.UnixMilli(gi.UpdatedMs)) > r.ttl {
		return false
	}
	r.gateways[id] = gwState{info: &gi, seen: now, rev: max(e.Revision(), g.rev), misses: g.misses}
	return true
}

// pruneBuried forgets buried gateways whose last entry left the bucket
// (registryMaxAge) a TTL ago, or the map would grow by one id per crashed
// gateway. Should a replay of such an entry still come (another node set a
// longer max age), it is older than the TTL: never alive, and the next
// sweep buries it again.
func (r *Registry) pruneBuried(now time.Time) {
	cutoff := now.Add(-registryMaxAge(r.ttl) - r.ttl).UnixMilli()
	r.mu.Lock()
	for id, up := range r.buried {
		if up < cutoff {
			delete(r.buried, id)
		}
	}
	r.mu.Unlock()
}

// asOf is the moment up to which this node's view is known complete: the
// last canary's write time once canaries flow, now before that. Silence is
// judged against it, so a watch that stalls (a NATS server died under its
// consumer) does not make every gateway look dead; crashes are still
// caught by the probes meanwhile.
func (r *Registry) asOf() time.Time {
	now := r.now()
	if c := r.current.Load(); c != 0 {
		if t := time.Unix(0, c); t.Before(now) {
			return t
		}
	}
	return now
}

// fresh reports whether a gateway last seen at seen is within the TTL.
func (r *Registry) fresh(seen time.Time) bool { return r.asOf().Sub(seen) <= r.ttl }

// probeMisses consecutive "no responders" answers declare a gateway dead
// before its TTL runs out. NATS answers "no responders" at once when no
// connection subscribes to the gateway's ping subject, which is what a
// killed gateway looks like as soon as its NATS server notices the closed
// socket. A gateway merely reconnecting to another NATS server is silent
// for well under probeMisses × probeInterval; if it is silent longer, it
// cannot receive deliveries anyway, and its next heartbeat revives it.
const (
	probeMisses   = 3
	probeInterval = time.Second
	probeTimeout  = 2 * time.Second
)

func (r *Registry) probe(ctx context.Context) {
	if r.nc == nil {
		return
	}
	interval := min(probeInterval, r.ttl/4)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.nc.IsConnected() {
			continue // our own link is down: silence proves nothing
		}
		r.mu.RLock()
		ids := make([]string, 0, len(r.gateways))
		for id := range r.gateways {
			ids = append(ids, id)
		}
		r.mu.RUnlock()
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pctx, cancel := context.WithTimeout(ctx, probeTimeout)
				_, err := r.nc.RequestWithContext(pctx, pingSubject(id), nil)
				cancel()
				r.probed(id, errors.Is(err, nats.ErrNoResponders))
			}()
		}
		wg.Wait()
	}
}

// probed records one probe result and buries the gateway after
// probeMisses consecutive misses.
func (r *Registry) probed(id string, miss bool) {
	r.mu.Lock()
	g, ok := r.gateways[id]
	if !ok {
		r.mu.Unlock()
		return
	}
	if miss {
		g.misses++
	} else {
		g.misses = 0
	}
	r.gateways[id] = g
	dead := g.misses >= probeMisses
	r.mu.Unlock()
	if dead {
		r.log.Info("gateway unreachable", "gateway", id)
		r.forget(id, true)
	}
}

// ServePing answers the probes of logic nodes for gatewayID until the
// returned subscription is unsubscribed.
func ServePing(nc *nats.Conn, gatewayID string) (*nats.Subscription, error) {
	return nc.Subscribe(pingSubject(gatewayID), func(m *nats.Msg) { _ = m.Respond(nil) })
}

// OnBuried calls fn (on a NATS goroutine: do not block) whenever a logic
// node declares gatewayID dead, which a live gateway hears only if it was
// cut off for a while: it should then write its presence entries again.
func OnBuried(nc *nats.Conn, gatewayID string, fn func()) (*nats.Subscription, error) {
	return nc.Subscribe(buriedSubject(gatewayID), func(*nats.Msg) { fn() })
}

// Alive reports whether the gateway is live.
func (r *Registry) Alive(id string) bool {
	r.mu.RLock()
	g, ok := r.gateways[id]
	r.mu.RUnlock()
	return ok && r.fresh(g.seen)
}

// connAlive reports whether c is a connection of a live gateway's current
// run: a gateway killed and restarted under the same id within the TTL is
// never seen dead, and the entries its dead run left (nobody deleted them)
// name connection ids at or below the new run's first_conn.
func (r *Registry) connAlive(c *clusterpb.ConnRef) bool {
	r.mu.RLock()
	g, ok := r.gateways[c.Gateway]
	r.mu.RUnlock()
	return ok && r.fresh(g.seen) && c.Conn > g.info.FirstConn
}

// firstConn is the first_conn of a live gateway's current run; ok is
// false for a gateway that is not alive.
func (r *Registry) firstConn(id string) (first uint64, ok bool) {
	r.mu.RLock()
	g, had := r.gateways[id]
	r.mu.RUnlock()
	if !had || !r.fresh(g.seen) {
		return 0, false
	}
	return g.info.FirstConn, true
}

// Live lists the live gateways that are not draining, sorted by id.
func (r *Registry) Live() []*clusterpb.GatewayInfo {
	r.mu.RLock()
	out := make([]*clusterpb.GatewayInfo, 0, len(r.gateways))
	for _, g := range r.gateways {
		if r.fresh(g.seen) && !g.info.Draining {
			out = append(out, g.info)
		}
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

// Pick chooses a live gateway for userID by strategy.
func (r *Registry) Pick(s Strategy, userID int64) (*clusterpb.GatewayInfo, error) {
	live := r.Live()
	if len(live) == 0 {
		return nil, ErrNoGateway
	}
	switch s {
	case Random:
		return live[rand.IntN(len(live))], nil
	case ConsistentHash:
		return pickRendezvous(live, userID), nil
	case LeastConns:
		best := live[0]
		for _, g := range live[1:] {
			if g.Conns < best.Conns {
				best = g
			}
		}
		return best, nil
	default:
		return live[int(r.rr.Add(1)%uint64(len(live)))], nil
	}
}

// pickRendezvous is highest-random-weight hashing: a user keeps its gateway
// while that gateway lives, and only its users move when it dies (or, when
// a gateway joins, only the users it now wins move to it).
//
// The weight must be well mixed in every bit: FNV over "id\x00uid" is
// not (sequential user ids differ only in the last bytes, which barely
// reach the high bits compared here), and ids 1–100 split 10/90 over two
// gateways. So the gateway id is hashed once and the user id is folded in
// through a 64-bit finalizer (splitmix64), whose every output bit depends
// on every input bit.
func pickRendezvous(live []*clusterpb.GatewayInfo, userID int64) *clusterpb.GatewayInfo {
	var best *clusterpb.GatewayInfo
	var bestW uint64
	for _, g := range live {
		h := fnv.New64a()
		h.Write([]byte(g.Id))
		if w := mix64(h.Sum64() ^ mix64(uint64(userID))); best == nil || w > bestW || (w == bestW && g.Id < best.Id) {
			best, bestW = g, w
		}
	}
	return best
}

// mix64 is the splitmix64 finalizer.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
