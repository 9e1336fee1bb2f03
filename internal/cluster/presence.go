package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

func presenceKey(c *clusterpb.ConnRef) string {
	return "u" + strconv.FormatInt(c.UserId, 10) + "." + c.Gateway + "." + strconv.FormatUint(c.Conn, 10)
}

// PresenceWriter records a gateway's connections. It implements
// gateway.Presence. It remembers what it wrote, so Reassert can write it
// all again after logic nodes may have dropped it (see Registrar.OnGap).
type PresenceWriter struct {
	kv jetstream.KeyValue

	mu      sync.Mutex          // guards entries and stale
	entries map[string][]byte   // key → encoded PresenceEntry of every open connection
	stale   map[string]struct{} // keys of closed connections whose delete failed
}

// NewPresenceWriter opens the presence bucket.
func NewPresenceWriter(ctx context.Context, nc *nats.Conn, replicas int) (*PresenceWriter, error) {
	kv, err := keyValue(ctx, nc, bucketPresence, replicas, 0)
	if err != nil {
		return nil, err
	}
	return &PresenceWriter{kv: kv, entries: map[string][]byte{}, stale: map[string]struct{}{}}, nil
}

// Connected implements gateway.Presence.
func (p *PresenceWriter) Connected(ctx context.Context, c *clusterpb.ConnRef) error {
	data, err := proto.Marshal(&clusterpb.PresenceEntry{Conn: c, SinceMs: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	key := presenceKey(c)
	if _, err = p.kv.Put(ctx, key, data); err != nil {
		return err
	}
	p.mu.Lock()
	p.entries[key] = data
	p.mu.Unlock()
	return nil
}

// Disconnected implements gateway.Presence.
func (p *PresenceWriter) Disconnected(ctx context.Context, c *clusterpb.ConnRef) error {
	key := presenceKey(c)
	p.mu.Lock()
	delete(p.entries, key)
	p.mu.Unlock()
	if err := p.kv.Delete(ctx, key); err != nil {
		p.mu.Lock()
		p.stale[key] = struct{}{}
		p.mu.Unlock()
		return err
	}
	return nil
}

// Len is the number of connections this writer holds entries for.
func (p *PresenceWriter) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.entries)
}

// reassertOpTimeout bounds each write of Reassert. A write whose reply was
// lost (the NATS connection was cut and made again while the request was
// out) would otherwise hold the whole round until ctx ends, with every
// entry after it unwritten: the fault run saw a gateway, cut off from
// NATS right after a NATS server's pause, leave its devices without live
// deliveries for the reasserter's whole two-minute budget.
const reassertOpTimeout = 5 * time.Second

// Reassert writes every entry of an open connection again and retries the
// deletes that failed. It returns the first error; entries after it are
// still tried, each write bounded by reassertOpTimeout.
func (p *PresenceWriter) Reassert(ctx context.Context) error {
	op := func(f func(context.Context) error) error {
		octx, cancel := context.WithTimeout(ctx, reassertOpTimeout)
		defer cancel()
		return f(octx)
	}
	p.mu.Lock()
	keys := make([]string, 0, len(p.entries))
	for k := range p.entries {
		keys = append(keys, k)
	}
	stale := make([]string, 0, len(p.stale))
	for k := range p.stale {
		stale = append(stale, k)
	}
	p.mu.Unlock()
	var first error
	for _, k := range stale {
		if err := op(func(ctx context.Context) error { return p.kv.Delete(ctx, k) }); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		p.mu.Lock()
		delete(p.stale, k)
		p.mu.Unlock()
	}
	for _, k := range keys {
		p.mu.Lock()
		data, ok := p.entries[k]
		p.mu.Unlock()
		if !ok {
			continue // disconnected meanwhile
		}
		err := op(func(ctx context.Context) error { _, err := p.kv.Put(ctx, k, data); return err })
		if err != nil && first == nil {
			first = err
		}
		// A connection that closed while we wrote must not stay behind.
		p.mu.Lock()
		_, still := p.entries[k]
		p.mu.Unlock()
		if !still {
			_ = op(func(ctx context.Context) error { return p.kv.Delete(ctx, k) })
		}
	}
	return first
}

// PresenceView is a logic node's in-memory copy of the presence bucket. It
// answers "where is this user connected" without a network round trip and
// hides connections of gateways the registry no longer lists.
type PresenceView struct {
	kv       jetstream.KeyValue
	registry *Registry
	log      *slog.Logger

	mu     sync.RWMutex                            // guards byUser and local
	byUser map[int64]map[string]*clusterpb.ConnRef // user → key → conn
	local  map[string]time.Time                    // keys added by Add, not yet confirmed by the bucket

	wg sync.WaitGroup // the watch and collect goroutines
}

// localTTL is how long an entry added by Add may wait for the gateway's
// own write to the bucket. A gateway that gave up on the connection never
// writes it, and the entry must not linger as a phantom connection.
const localTTL = 15 * time.Second

// WatchPresence loads the presence bucket and follows it until ctx ends.
// Wait waits for the goroutines it starts, which end with ctx.
func WatchPresence(ctx context.Context, nc *nats.Conn, replicas int, reg *Registry, log *slog.Logger) (*PresenceView, error) {
	kv, err := keyValue(ctx, nc, bucketPresence, replicas, 0)
	if err != nil {
		return nil, err
	}
	v := &PresenceView{kv: kv, registry: reg, log: log, byUser: map[int64]map[string]*clusterpb.ConnRef{}, local: map[string]time.Time{}}
	ready := make(chan struct{})
	v.goTracked(func() { watchBucket(ctx, kv, ready, log, v.update) })
	select {
	case <-ready:
	case <-ctx.Done():
		v.wg.Wait()
		return nil, ctx.Err()
	}
	if reg != nil {
		v.goTracked(func() { v.collect(ctx, reg.ttl) })
	}
	return v, nil
}

func (v *PresenceView) goTracked(fn func()) {
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		fn()
	}()
}

// Wait blocks until the goroutines WatchPresence started have returned,
// which they do once its ctx ended.
func (v *PresenceView) Wait() { v.wg.Wait() }

func (v *PresenceView) update(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		v.removeKey(e.Key())
		return
	}
	var pe clusterpb.PresenceEntry
	if proto.Unmarshal(e.Value(), &pe) != nil || pe.Conn == nil {
		return
	}
	v.put(pe.Conn, false)
}

// collect deletes, every interval, the entries of gateways that were not
// alive at this sweep nor at the one before, and the entries a live
// gateway's earlier run left (connection ids at or below its first_conn:
// it was killed and restarted under the same id, so nobody deleted them
// and it was never seen dead). Registry.onDead already cleans up after
// gateways this node saw die; this catches the ones that died before this
// node started (or while its watch was down), and the restarted ones.
func (v *PresenceView) collect(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	suspects := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		v.sweepLocal(time.Now())
		v.mu.RLock()
		gws := map[string]bool{}
		for _, m := range v.byUser {
			for _, c := range m {
				gws[c.Gateway] = true
			}
		}
		v.mu.RUnlock()
		next := map[string]bool{}
		for gw := range gws {
			if first, ok := v.registry.firstConn(gw); ok {
				if first > 0 {
					v.forgetEarlierRuns(ctx, gw, first)
				}
				continue
			}
			if suspects[gw] {
				v.log.Info("removing presence of a dead gateway", "gateway", gw)
				v.ForgetGateway(ctx, gw)
				continue
			}
			next[gw] = true
		}
		suspects = next
	}
}

// forgetEarlierRuns drops, locally and from the bucket, a gateway's
// entries of connection ids at or below first: an earlier run's. Reads
// hide them already (Registry.connAlive); this keeps them from piling up.
func (v *PresenceView) forgetEarlierRuns(ctx context.Context, gatewayID string, first uint64) {
	v.forgetWhere(ctx, func(c *clusterpb.ConnRef) bool { return c.Gateway == gatewayID && c.Conn <= first }, "earlier run", gatewayID)
}

// Add records a connection locally, before the bucket's watch reports it:
// the logic node that authenticated a connection routes to it at once.
func (v *PresenceView) Add(c *clusterpb.ConnRef) { v.put(c, true) }

func (v *PresenceView) put(c *clusterpb.ConnRef, local bool) {
	key := presenceKey(c)
	now := time.Now()
	v.mu.Lock()
	m := v.byUser[c.UserId]
	if m == nil {
		m = map[string]*clusterpb.ConnRef{}
		v.byUser[c.UserId] = m
	}
	m[key] = c
	if local {
		if v.local == nil {
			v.local = map[string]time.Time{}
		}
		v.local[key] = now
	} else {
		delete(v.local, key)
	}
	v.mu.Unlock()
}

func (v *PresenceView) removeKey(key string) {
	uid, err := userOfKey(key)
	if err != nil {
		return
	}
	v.mu.Lock()
	v.removeLocked(uid, key)
	v.mu.Unlock()
}

func (v *PresenceView) removeLocked(uid int64, key string) {
	delete(v.local, key)
	if m := v.byUser[uid]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(v.byUser, uid)
		}
	}
}

// sweepLocal drops entries Add made that the bucket never confirmed.
func (v *PresenceView) sweepLocal(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, at := range v.local {
		if now.Sub(at) <= localTTL {
			continue
		}
		if uid, err := userOfKey(k); err == nil {
			v.removeLocked(uid, k)
		} else {
			delete(v.local, k)
		}
	}
}

func userOfKey(key string) (int64, error) {
	i := strings.IndexByte(key, '.')
	if i < 2 || key[0] != 'u' {
		return 0, fmt.Errorf("bad presence key %q", key)
	}
	return strconv.ParseInt(key[1:i], 10, 64)
}

// Conns lists the live connections of a user.
func (v *PresenceView) Conns(userID int64) []*clusterpb.ConnRef { return v.AppendConns(nil, userID) }

// AppendConns appends the live connections of a user to dst, avoiding an
// allocation per lookup on the message path.
func (v *PresenceView) AppendConns(dst []*clusterpb.ConnRef, userID int64) []*clusterpb.ConnRef {
	v.mu.RLock()
	for _, c := range v.byUser[userID] {
		if v.registry == nil || v.registry.connAlive(c) {
			dst = append(dst, c)
		}
	}
	v.mu.RUnlock()
	return dst
}

// Online lists every user with at least one live connection.
func (v *PresenceView) Online() map[int64][]*clusterpb.ConnRef {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make(map[int64][]*clusterpb.ConnRef, len(v.byUser))
	for uid, m := range v.byUser {
		for _, c := range m {
			if v.registry == nil || v.registry.connAlive(c) {
				out[uid] = append(out[uid], c)
			}
		}
	}
	return out
}

// ForgetGateway drops a dead gateway's entries locally and from the bucket,
// so a crashed gateway never keeps users online. Safe to run on every
// logic node at once: deleting a deleted key is harmless.
func (v *PresenceView) ForgetGateway(ctx context.Context, gatewayID string) {
	v.forgetWhere(ctx, func(c *clusterpb.ConnRef) bool { return c.Gateway == gatewayID }, "", gatewayID)
}

// forgetWhere drops the entries drop selects, locally and from the bucket.
func (v *PresenceView) forgetWhere(ctx context.Context, drop func(*clusterpb.ConnRef) bool, why, gatewayID string) {
	var keys []string
	v.mu.Lock()
	for uid, m := range v.byUser {
		for k, c := range m {
			if drop(c) {
				keys = append(keys, k)
				delete(m, k)
				delete(v.local, k)
			}
		}
		if len(m) == 0 {
			delete(v.byUser, uid)
		}
	}
	v.mu.Unlock()
	if why != "" && len(keys) > 0 {
		v.log.Info("removing presence of a gateway's "+why, "gateway", gatewayID, "entries", len(keys))
	}
	for _, k := range keys {
		if err := v.kv.Delete(ctx, k); err != nil && ctx.Err() == nil {
			v.log.Debug("presence cleanup", "err", err)
		}
	}
}
