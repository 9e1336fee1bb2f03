package cluster

import (
	"context"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

func TestRegistrySeesGatewaysAndDraining(t *testing.T) {
	ns := startServer(t)
	logic := connect(t, ns)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := startGateway(t, ns, "gw-a", 10*time.Second, 1)
	reg, err := WatchRegistry(ctx, logic, 1, 10*time.Second, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !reg.Alive("gw-a") {
		t.Fatal("gw-a registered before the watch started: not alive")
	}
	b := startGateway(t, ns, "gw-b", 10*time.Second, 1)
	eventually(t, 5*time.Second, "gw-b alive", func() bool { return reg.Alive("gw-b") })
	if got := ids(reg.Live()); got != "gw-a,gw-b" {
		t.Fatalf("Live() = %s, want gw-a,gw-b", got)
	}

	b.set(t, true, 0)
	eventually(t, 5*time.Second, "draining gw-b left out of Live", func() bool { return ids(reg.Live()) == "gw-a" })
	if !reg.Alive("gw-b") {
		t.Fatal("a draining gateway is still alive (its connections get deliveries)")
	}
	for i := range 50 {
		for _, s := range []Strategy{RoundRobin, Random, ConsistentHash, LeastConns} {
			gi, err := reg.Pick(s, int64(i))
			if err != nil || gi.Id != "gw-a" {
				t.Fatalf("Pick(%s) = %v, %v; want gw-a (gw-b drains)", s, gi, err)
			}
		}
	}
	a.set(t, true, 0)
	eventually(t, 5*time.Second, "no live gateway", func() bool { return len(reg.Live()) == 0 })
	if _, err := reg.Pick(RoundRobin, 1); err != ErrNoGateway {
		t.Fatalf("Pick with every gateway draining: %v, want ErrNoGateway", err)
	}
}

func TestRegistryCleanStopDeletesEntry(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	g := startGateway(t, ns, "gw-a", 10*time.Second, 1)
	dead := make(chan string, 1)
	reg, err := WatchRegistry(ctx, connect(t, ns), 1, 10*time.Second, func(id string) { dead <- id }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	g.stop() // Run deletes the entry on the way out
	<-g.done
	select {
	case id := <-dead:
		if id != "gw-a" {
			t.Fatalf("onDead(%q), want gw-a", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("onDead not called after a clean stop")
	}
	if reg.Alive("gw-a") {
		t.Fatal("stopped gateway still alive")
	}
}

// A gateway that still answers probes but stopped heartbeating (hung, or
// cut off from JetStream) disappears within the TTL.
func TestRegistryTTLExpiry(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const ttl = time.Second
	nc := connect(t, ns)
	if _, err := ServePing(nc, "gw-hung"); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	r, err := NewRegistrar(rctx, nc, 1, ttl, func() *clusterpb.GatewayInfo { return &clusterpb.GatewayInfo{Id: "gw-hung"} }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var deadAt time.Time
	reg, err := WatchRegistry(ctx, connect(t, ns), 1, ttl, func(string) { mu.Lock(); deadAt = time.Now(); mu.Unlock() }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(rctx); err != nil { // one heartbeat, then silence
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "gateway seen", func() bool { return reg.Alive("gw-hung") })
	eventually(t, 3*ttl, "gateway expired", func() bool { return !reg.Alive("gw-hung") })
	if _, err := reg.Pick(RoundRobin, 1); err != ErrNoGateway {
		t.Fatalf("Pick after expiry: %v, want ErrNoGateway", err)
	}
	eventually(t, 2*ttl, "onDead called", func() bool { mu.Lock(); defer mu.Unlock(); return !deadAt.IsZero() })
	// How soon after the TTL: TestRegistryTTLBoundary, on a clock of its own.
	// A restarted watcher replaying the stale entry must not revive it.
	reg2, err := WatchRegistry(ctx, connect(t, ns), 1, ttl, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if reg2.Alive("gw-hung") || len(reg2.Live()) != 0 {
		t.Fatal("stale entry replayed as alive")
	}
	// A fresh heartbeat brings it back.
	if err := r.Put(rctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "gateway revived by a heartbeat", func() bool { return reg.Alive("gw-hung") })
}

// The TTL on an injected clock: a gateway is alive up to exactly the TTL
// after its last heartbeat, and the first sweep past it buries it.
func TestRegistryTTLBoundary(t *testing.T) {
	const ttl = time.Second
	now := time.Unix(1_800_000_000, 0)
	var dead []string
	r := &Registry{ttl: ttl, log: testLogger(t), gateways: map[string]gwState{}, buried: map[string]int64{},
		onDead: func(id string) { dead = append(dead, id) }, clock: func() time.Time { return now }}
	data, err := proto.Marshal(&clusterpb.GatewayInfo{Id: "gw-a", UpdatedMs: now.UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	r.update(fakeEntry{key: "gw-a", value: data, rev: 1})
	for _, step := range []struct {
		after time.Duration
		alive bool
	}{{0, true}, {ttl / 2, true}, {ttl, true}, {ttl + time.Millisecond, false}} {
		now = time.Unix(1_800_000_000, 0).Add(step.after)
		r.sweepOnce(context.Background())
		if got := r.Alive("gw-a"); got != step.alive {
			t.Fatalf("%v after the heartbeat: alive %v, want %v", step.after, got, step.alive)
		}
		if want := !step.alive; (len(dead) == 1) != want {
			t.Fatalf("%v after the heartbeat: onDead calls %v", step.after, dead)
		}
	}
	// A replay of the same entry does not revive it; a newer heartbeat does.
	r.update(fakeEntry{key: "gw-a", value: data, rev: 1})
	if r.Alive("gw-a") {
		t.Fatal("a replayed entry revived the gateway")
	}
	data, _ = proto.Marshal(&clusterpb.GatewayInfo{Id: "gw-a", UpdatedMs: now.UnixMilli()})
	r.update(fakeEntry{key: "gw-a", value: data, rev: 2})
	if !r.Alive("gw-a") {
		t.Fatal("a fresh heartbeat did not revive the gateway")
	}
}

// fakeEntry is a registry bucket entry without a bucket.
type fakeEntry struct {
	key   string
	value []byte
	rev   uint64
}

func (e fakeEntry) Bucket() string                  { return bucketGateways }
func (e fakeEntry) Key() string                     { return e.key }
func (e fakeEntry) Value() []byte                   { return e.value }
func (e fakeEntry) Revision() uint64                { return e.rev }
func (e fakeEntry) Created() time.Time              { return time.Time{} }
func (e fakeEntry) Delta() uint64                   { return 0 }
func (e fakeEntry) Operation() jetstream.KeyValueOp { return jetstream.KeyValuePut }

// kill -9 of a gateway: its NATS connection closes, probes get "no
// responders", and the gateway is gone long before its TTL.
func TestRegistryProbeDetectsCrash(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const ttl = time.Minute
	a := startGateway(t, ns, "gw-a", ttl, 1)
	startGateway(t, ns, "gw-b", ttl, 1)
	dead := make(chan string, 4)
	reg, err := WatchRegistry(ctx, connect(t, ns), 1, ttl, func(id string) { dead <- id }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "both alive", func() bool { return len(reg.Live()) == 2 })
	start := time.Now()
	a.kill()
	select {
	case id := <-dead:
		if id != "gw-a" {
			t.Fatalf("onDead(%q), want gw-a", id)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("crashed gateway not detected within 15s (TTL is 1m)")
	}
	t.Logf("crash detected after %v", time.Since(start).Round(time.Millisecond))
	for i := range 100 {
		if gi, err := reg.Pick(RoundRobin, int64(i)); err != nil || gi.Id != "gw-b" {
			t.Fatalf("Pick after crash = %v, %v; want gw-b", gi, err)
		}
	}
	if !reg.Alive("gw-b") {
		t.Fatal("live gateway buried")
	}
}

func ids(gs []*clusterpb.GatewayInfo) string {
	s := ""
	for i, g := range gs {
		if i > 0 {
			s += ","
		}
		s += g.Id
	}
	return s
}

// Keys of gateways that crashed (and the delete markers of those that
// stopped) leave the bucket once they are older than registryMaxAge
// (2×TTL), also in a bucket an older Magpie created without a max age;
// a live gateway's key stays.
func TestRegistryKeysOfDeadGatewaysExpire(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ttl = time.Second
	js, err := jetstream.New(connect(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	// The bucket as Magpie created it before it had a max age, holding
	// the key of a gateway that crashed back then.
	old, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucketGateways, Storage: jetstream.MemoryStorage, History: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Put(ctx, "gw-old", []byte("x")); err != nil {
		t.Fatal(err)
	}
	crashed := startGateway(t, ns, "gw-crashed", ttl, 1)
	stopped := startGateway(t, ns, "gw-stopped", ttl, 1)
	startGateway(t, ns, "gw-live", ttl, 1)
	if got := bucketMaxAge(t, js); got != registryMaxAge(ttl) {
		t.Fatalf("bucket max age %v, want %v", got, registryMaxAge(ttl))
	}
	crashed.kill() // its key stays behind
	stopped.stop() // Run deletes its key: a delete marker stays behind
	<-stopped.done
	left := time.Now()
	if got := bucketKeys(t, js); got != "gw-crashed,gw-live,gw-old,gw-stopped" {
		t.Fatalf("keys right after the crash and the stop: %s", got)
	}
	eventually(t, registryMaxAge(ttl)+3*time.Second, "only the live gateway's key left", func() bool {
		return bucketKeys(t, js) == "gw-live"
	})
	t.Logf("dead keys gone %v after the crash", time.Since(left).Round(time.Millisecond))
	// The live gateway's heartbeats keep its key for longer than the max age.
	time.Sleep(registryMaxAge(ttl))
	if got := bucketKeys(t, js); got != "gw-live" {
		t.Fatalf("keys after another max age: %s, want the live gateway's", got)
	}
}

// The max age is only raised: a process with a shorter TTL keeps the
// longer one another process (or an operator) set.
func TestRegistryMaxAgeOnlyGrows(t *testing.T) {
	ns := startServer(t)
	nc := connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	info := func() *clusterpb.GatewayInfo { return &clusterpb.GatewayInfo{Id: "gw"} }
	for _, step := range []struct{ ttl, want time.Duration }{
		{5 * time.Second, 10 * time.Second},
		{time.Second, 10 * time.Second},
		{20 * time.Second, 40 * time.Second},
	} {
		if _, err := NewRegistrar(ctx, nc, 1, step.ttl, info, testLogger(t)); err != nil {
			t.Fatal(err)
		}
		if got := bucketMaxAge(t, js); got != step.want {
			t.Fatalf("after a registrar with TTL %v: max age %v, want %v", step.ttl, got, step.want)
		}
	}
	if _, err := WatchRegistry(ctx, nc, 1, 3*time.Second, nil, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if got := bucketMaxAge(t, js); got != 40*time.Second {
		t.Fatalf("after a watcher with TTL 3s: max age %v, want 40s", got)
	}
	// The presence bucket has no max age: its entries are not re-put.
	if _, err := NewPresenceWriter(ctx, nc, 1); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "KV_"+bucketPresence)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxAge; got != 0 {
		t.Fatalf("presence bucket max age %v, want none", got)
	}
}

// Buried gateways are forgotten once their entry cannot be replayed.
func TestRegistryPrunesBuried(t *testing.T) {
	const ttl = time.Second
	r := &Registry{ttl: ttl, log: testLogger(t), gateways: map[string]gwState{}, buried: map[string]int64{}}
	now := time.Now()
	r.buried["gw-recent"] = now.Add(-registryMaxAge(ttl)).UnixMilli()
	r.buried["gw-long-gone"] = now.Add(-registryMaxAge(ttl) - 2*ttl).UnixMilli()
	r.pruneBuried(now)
	if _, ok := r.buried["gw-long-gone"]; ok {
		t.Error("a gateway buried long ago is still remembered")
	}
	if _, ok := r.buried["gw-recent"]; !ok {
		t.Error("a gateway whose entry may still be replayed was forgotten")
	}
}

// registryStream is the stream behind the registry bucket.
func registryStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "KV_"+bucketGateways)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bucketMaxAge is the registry bucket's stream max age.
func bucketMaxAge(t *testing.T, js jetstream.JetStream) time.Duration {
	t.Helper()
	s := registryStream(t, js)
	return s.CachedInfo().Config.MaxAge
}

// bucketKeys lists the keys the registry stream holds anything for,
// values and delete markers alike, sorted, canaries left out.
func bucketKeys(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	s := registryStream(t, js)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	prefix := "$KV." + bucketGateways + "."
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for subj := range info.State.Subjects {
		if k := strings.TrimPrefix(subj, prefix); !strings.HasPrefix(k, canaryPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// A logic node that was paused (SIGSTOP, a frozen VM) longer than the TTL
// wakes with a view in which every gateway has been silent for the whole
// pause: its timers fire before its watch delivers what was written
// meanwhile. It must ask the bucket before burying a gateway that kept
// heartbeating, or it deletes that gateway's presence and live pushes to
// its users are lost. The registry here has no watcher (a watch blocked
// by the pause): its view holds one entry, last seen three TTLs ago, while
// the bucket holds that entry still fresh ("stale clock") or a newer
// heartbeat ("stale watch").
func TestRegistryPausedNodeAsksTheBucketBeforeBurying(t *testing.T) {
	const ttl = 2 * time.Second
	for _, tt := range []struct {
		name     string
		watchLag bool // the bucket holds a heartbeat the view never saw
	}{{"stale clock", false}, {"stale watch", true}} {
		t.Run(tt.name, func(t *testing.T) {
			ns := startServer(t)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			nc := connect(t, ns)
			gw, err := NewRegistrar(ctx, nc, 1, ttl, func() *clusterpb.GatewayInfo { return &clusterpb.GatewayInfo{Id: "gw-a"} }, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := gw.Put(ctx); err != nil {
				t.Fatal(err)
			}
			kv, err := keyValue(ctx, nc, bucketGateways, 1, registryMaxAge(ttl))
			if err != nil {
				t.Fatal(err)
			}
			var dead []string
			reg := &Registry{ttl: ttl, log: testLogger(t), kv: kv, gateways: map[string]gwState{}, buried: map[string]int64{},
				onDead: func(id string) { dead = append(dead, id) }}
			e, err := kv.Get(ctx, "gw-a")
			if err != nil {
				t.Fatal(err)
			}
			reg.update(e)
			if tt.watchLag {
				if err := gw.Put(ctx); err != nil { // a heartbeat during the pause
					t.Fatal(err)
				}
			}
			// Wake from the pause: the last heartbeat seen is 3 TTLs old
			// by this node's clock, and its canaries say its view is current.
			now := time.Now()
			g := reg.gateways["gw-a"]
			g.seen = now.Add(-3 * ttl)
			reg.gateways["gw-a"] = g
			reg.current.Store(now.UnixNano())
			if reg.Alive("gw-a") {
				t.Fatal("the injected pause did not make gw-a look silent")
			}

			reg.sweepOnce(ctx)
			if len(dead) > 0 {
				t.Fatal("the paused node buried gw-a, whose entry in the bucket is fresh")
			}
			if !reg.Alive("gw-a") {
				t.Fatal("gw-a not alive after the sweep asked the bucket")
			}
		})
	}
}

// WaitAlive wakes on the entry that makes the gateway alive, not on a
// poll, and gives up with its context.
func TestRegistryWaitAlive(t *testing.T) {
	r := &Registry{ttl: time.Second, log: testLogger(t), gateways: map[string]gwState{}, buried: map[string]int64{}}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- r.WaitAlive(ctx, "gw-b")
	}()
	for _, id := range []string{"gw-a", "gw-b"} { // another gateway's entry wakes it too early
		data, err := proto.Marshal(&clusterpb.GatewayInfo{Id: id, UpdatedMs: time.Now().UnixMilli()})
		if err != nil {
			t.Fatal(err)
		}
		r.update(fakeEntry{key: id, value: data, rev: 1})
	}
	if err := <-done; err != nil {
		t.Fatalf("WaitAlive: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.WaitAlive(ctx, "gw-never"); err != context.Canceled {
		t.Fatalf("WaitAlive for a gateway that never comes: %v, want context.Canceled", err)
	}
}
