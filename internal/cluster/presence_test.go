package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

// presenceKeys lists the keys in the presence bucket.
func presenceKeys(t *testing.T, v *PresenceView) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	keys, err := v.kv.Keys(ctx)
	if err == jetstream.ErrNoKeysFound {
		return map[string]bool{}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, k := range keys {
		if !strings.HasPrefix(k, canaryPrefix) {
			out[k] = true
		}
	}
	return out
}

func TestPresenceCleanupAfterGatewayCrash(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const ttl = time.Minute // the probe, not the TTL, must find the crash
	a := startGateway(t, ns, "gw-a", ttl, 1)
	b := startGateway(t, ns, "gw-b", ttl, 1)
	logic := connect(t, ns)
	var view *PresenceView
	reg, err := WatchRegistry(ctx, logic, 1, ttl, func(id string) { view.ForgetGateway(ctx, id) }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	view, err = WatchPresence(ctx, logic, 1, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range [...]struct {
		g    *fakeGateway
		user int64
		id   uint64
	}{{a, 1, 1}, {a, 2, 2}, {b, 1, 3}} {
		if err := c.g.pw.Connected(ctx, conn(c.user, c.g.id, c.id)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "user 1 online on two gateways", func() bool { return len(view.Conns(1)) == 2 })
	eventually(t, 5*time.Second, "user 2 online", func() bool { return len(view.Conns(2)) == 1 })

	// A clean disconnect removes the entry.
	if err := b.pw.Disconnected(ctx, conn(1, "gw-b", 3)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "user 1 down to one conn", func() bool { return len(view.Conns(1)) == 1 })

	// A crash: nobody deletes gw-a's entries, yet its users go offline and
	// the bucket forgets them.
	a.kill()
	eventually(t, 15*time.Second, "gw-a's users offline", func() bool {
		return len(view.Conns(1)) == 0 && len(view.Conns(2)) == 0 && len(view.Online()) == 0
	})
	eventually(t, 5*time.Second, "gw-a's keys deleted from the bucket", func() bool { return len(presenceKeys(t, view)) == 0 })

	// The user can be online again at once, through the other gateway.
	if err := b.pw.Connected(ctx, conn(1, "gw-b", 4)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "user 1 back online via gw-b", func() bool {
		cs := view.Conns(1)
		return len(cs) == 1 && cs[0].Gateway == "gw-b"
	})
}

// After logic nodes dropped a live gateway's entries (it was cut off from
// NATS longer than the probes allow), Reassert writes them back.
func TestPresenceReassert(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := startGateway(t, ns, "gw-a", time.Minute, 1)
	logic := connect(t, ns)
	reg, err := WatchRegistry(ctx, logic, 1, time.Minute, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	view, err := WatchPresence(ctx, logic, 1, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := uint64(1); i <= 3; i++ {
		if err := a.pw.Connected(ctx, conn(int64(i), "gw-a", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.pw.Disconnected(ctx, conn(3, "gw-a", 3)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "two online", func() bool { return len(view.Online()) == 2 })
	view.ForgetGateway(ctx, "gw-a")
	eventually(t, 5*time.Second, "entries gone", func() bool { return len(presenceKeys(t, view)) == 0 && len(view.Online()) == 0 })
	if err := a.pw.Reassert(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "entries back", func() bool { return len(view.Online()) == 2 })
	if got := presenceKeys(t, view); len(got) != 2 || got["u3.gw-a.3"] {
		t.Fatalf("bucket keys after reassert: %v, want users 1 and 2 only", got)
	}
	if a.pw.Len() != 2 {
		t.Fatalf("writer holds %d entries, want 2", a.pw.Len())
	}
}

// Entries of a gateway that died before this logic node started (so it
// never saw it die) are collected after two sweeps.
func TestPresenceCollectsOrphans(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	nc := connect(t, ns)
	pw, err := NewPresenceWriter(ctx, nc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := pw.Connected(ctx, conn(7, "gw-gone", 1)); err != nil {
		t.Fatal(err)
	}
	const ttl = 200 * time.Millisecond
	reg, err := WatchRegistry(ctx, connect(t, ns), 1, ttl, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	view, err := WatchPresence(ctx, connect(t, ns), 1, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(view.Conns(7)) != 0 {
		t.Fatal("an unregistered gateway's connection counts as online")
	}
	eventually(t, 5*time.Second, "orphan collected", func() bool { return len(presenceKeys(t, view)) == 0 })
}

// A live gateway declared dead (cut off from NATS for a few seconds) hears
// it and writes its presence entries back after the logic node deleted them.
func TestPresenceComesBackAfterFalseDeath(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	a := startGateway(t, ns, "gw-a", time.Minute, 1)
	if _, err := OnBuried(a.nc, "gw-a", func() { go a.pw.Reassert(ctx) }); err != nil {
		t.Fatal(err)
	}
	logic := connect(t, ns)
	var view *PresenceView
	reg, err := WatchRegistry(ctx, logic, 1, time.Minute, func(id string) { view.ForgetGateway(ctx, id) }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	view, err = WatchPresence(ctx, logic, 1, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.pw.Connected(ctx, conn(1, "gw-a", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "online", func() bool { return len(view.Conns(1)) == 1 })
	for range probeMisses { // as if three probes had found no responder
		reg.probed("gw-a", true)
	}
	if reg.Alive("gw-a") {
		t.Fatal("gateway not buried after three misses")
	}
	a.set(t, false, 1) // its next heartbeat revives it
	eventually(t, 5*time.Second, "gateway revived", func() bool { return reg.Alive("gw-a") })
	eventually(t, 5*time.Second, "presence written back", func() bool {
		return len(view.Conns(1)) == 1 && presenceKeys(t, view)["u1.gw-a.1"]
	})
}

// An entry Add made for a connection the gateway never confirmed (it gave
// up on the auth) does not linger as a phantom connection.
func TestPresenceLocalEntryExpires(t *testing.T) {
	v := &PresenceView{byUser: map[int64]map[string]*clusterpb.ConnRef{}, local: map[string]time.Time{}}
	phantom := &clusterpb.ConnRef{Gateway: "gw1", Conn: 1, UserId: 7}
	confirmed := &clusterpb.ConnRef{Gateway: "gw1", Conn: 2, UserId: 7}
	v.Add(phantom)
	v.Add(confirmed)
	v.put(confirmed, false) // the gateway's own write arrived
	v.sweepLocal(time.Now())
	if got := len(v.Conns(7)); got != 2 {
		t.Fatalf("before the TTL: %d conns, want 2", got)
	}
	v.sweepLocal(time.Now().Add(localTTL + time.Second))
	got := v.Conns(7)
	if len(got) != 1 || got[0].Conn != 2 {
		t.Fatalf("after the TTL: %v, want only the confirmed conn 2", got)
	}
}

// A gateway killed with -9 and restarted under the same id within the
// registry TTL is never seen dead, so nobody deletes its last run's
// presence entries: the user of such an entry looked online (and got
// deliveries) through a connection that no longer exists, for good. The
// new run announces its first connection id; the entries at or below it
// are hidden at once and removed from the bucket.
func TestPresenceDropsARestartedGatewaysEarlierRun(t *testing.T) {
	ns := startServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const ttl = 3 * time.Second
	old := startGatewayRun(t, ns, "gw-a", ttl, 1, 1000)
	logic := connect(t, ns)
	var view *PresenceView
	reg, err := WatchRegistry(ctx, logic, 1, ttl, func(id string) { view.ForgetGateway(ctx, id) }, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	view, err = WatchPresence(ctx, logic, 1, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.pw.Connected(ctx, conn(1, "gw-a", 1001)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "user 1 online", func() bool { return len(view.Conns(1)) == 1 })

	// kill -9, and the same id back at once (the probes never miss three
	// times in a row, the TTL never runs out).
	old.kill()
	restarted := startGatewayRun(t, ns, "gw-a", ttl, 1, 2000)
	if err := restarted.pw.Connected(ctx, conn(2, "gw-a", 2001)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "user 2 online through the new run", func() bool { return len(view.Conns(2)) == 1 })
	eventually(t, 5*time.Second, "user 1 offline: its connection died with the old run", func() bool {
		_, on := view.Online()[1]
		return len(view.Conns(1)) == 0 && !on
	})
	eventually(t, 4*ttl, "the old run's key deleted from the bucket", func() bool {
		keys := presenceKeys(t, view)
		return !keys["u1.gw-a.1001"] && keys["u2.gw-a.2001"]
	})
	if reg.Alive("gw-a") != true {
		t.Fatal("the restarted gateway is not alive")
	}
	if got := view.Conns(2); len(got) != 1 || got[0].Conn != 2001 {
		t.Fatalf("user 2's connections: %v", got)
	}
}
