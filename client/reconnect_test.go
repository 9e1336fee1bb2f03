package client

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/faultproxy"
	"github.com/magpie-im/magpie/internal/testserver"
	"github.com/magpie-im/magpie/proto/wire"
)

// logCounter is a slog.Handler that keeps the messages logged.
type logCounter struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newLogCounter() logCounter { return logCounter{mu: new(sync.Mutex), msgs: new([]string)} }

func (h logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.msgs = append(*h.msgs, r.Message)
	h.mu.Unlock()
	return nil
}
func (h logCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h logCounter) WithGroup(string) slog.Handler      { return h }

func (h logCounter) count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range *h.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

func TestDrainingKickMovesToTheNewGateway(t *testing.T) {
	t.Parallel()
	c := testserver.StartCluster(t, "alice", "bob")
	old := c.AddGateway(t, "gw-old", func(cfg *config.Config) { cfg.DrainTimeout = 5 * time.Second })
	alice, rec := connect(t, c.Server, "alice", func(o *Options) { o.Device = "phone" })
	if len(old.Proxy.ConnsOf("alice")) != 1 {
		t.Fatal("alice is not on the first gateway")
	}
	// The first gateway drains (SIGTERM): it leaves the routing, then
	// kicks its clients with draining, reconnect set.
	next := c.AddGateway(t, "gw-next")
	kicks := func() int {
		return old.Proxy.Count(func(f *faultproxy.Frame) bool { return f.Env.GetKick().GetCode() == uint32(wire.CodeDraining) })
	}
	testserver.Stop(t, old.Node)
	if kicks() != 1 {
		t.Fatalf("%d draining kicks seen, want 1", kicks())
	}
	testserver.WaitFor(t, "ready on the new gateway", func() bool {
		return rec.count(StateReady) == 2 && len(next.Proxy.ConnsOf("alice")) == 1
	})
	if n := len(old.Proxy.Conns()); n != 0 {
		t.Fatalf("%d connections left on the draining gateway", n)
	}
	// The token is still good: the client asks for a gateway, no login.
	if got, routes := c.LoginDevices(), c.Routes(); !slices.Equal(got, []string{"phone"}) || routes != 1 {
		t.Fatalf("logins %v and %d reroutes, want no new login and one GET /v1/gateway", got, routes)
	}
	if _, err := alice.SendText(ctxT(t), "bob", "moved"); err != nil {
		t.Fatal(err)
	}
}

func TestDeadGatewayLeadsToRerouteAfterTwoFailedDials(t *testing.T) {
	t.Parallel()
	c := testserver.StartCluster(t, "alice")
	doomed := c.AddGateway(t, "gw-doomed", func(cfg *config.Config) { cfg.DrainTimeout = 100 * time.Millisecond })
	logs := newLogCounter()
	_, rec := connect(t, c.Server, "alice", func(o *Options) { o.Device = "laptop"; o.Logger = slog.New(logs) })
	if len(doomed.Proxy.ConnsOf("alice")) != 1 {
		t.Fatal("alice is not on the doomed gateway")
	}
	live := c.AddGateway(t, "gw-live")
	// kill -9: the server side learns the gateway is gone (here by its
	// shutdown, whose kick the partition swallows), and the client sees
	// only its connection drop and dials refused; the token it holds is
	// still valid.
	doomed.Proxy.Partition()
	testserver.Stop(t, doomed.Node)
	doomed.Proxy.Kill()
	testserver.WaitFor(t, "ready on the live gateway", func() bool {
		return rec.count(StateReady) == 2 && len(live.Proxy.ConnsOf("alice")) == 1
	})
	if got, routes := c.LoginDevices(), c.Routes(); !slices.Equal(got, []string{"laptop"}) || routes != 1 {
		t.Fatalf("logins %v and %d reroutes, want no new login and one GET /v1/gateway", got, routes)
	}
	if f, r := logs.count("reconnect failed"), logs.count("gateway unreachable; asking for another"); f != 2 || r != 1 {
		t.Fatalf("%d failed reconnects and %d reroutes logged, want 2 failed dials, then 1 reroute", f, r)
	}
}

func TestPeriodicResyncDeliversALostLastMessage(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, []testserver.Options{testserver.Heartbeat(time.Second)}, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	_, withResync := connect(t, srv, "bob", func(o *Options) { o.Device = "phone"; o.ResyncEvery = time.Millisecond })
	_, without := connect(t, srv, "bob", func(o *Options) { o.Device = "laptop"; o.ResyncEvery = -1 })
	// bob's live push of alice's last message is lost, and no later
	// message reveals the gap.
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		if pushTo("bob", f) {
			return faultproxy.Drop
		}
		return faultproxy.Pass
	})
	if _, err := alice.SendText(ctxT(t), "bob", "the last word"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, withResync, "1:the last word")
	// The device with the resync off waits for a later message or a
	// reconnect; more heartbeats do not bring it. A barrier on the
	// heartbeats themselves, not a sleep: wait until the laptop pinged
	// twice more (each ping's pong could have revealed the gap).
	laptopPings := func() int {
		return srv.Proxy.Count(func(f *faultproxy.Frame) bool {
			return f.Dir == faultproxy.ToServer && f.Conn.User() == "bob" && f.Conn.Device() == "laptop" && f.Env.GetPing() != nil
		})
	}
	pinged := laptopPings()
	for deadline := time.Now().Add(10 * time.Second); laptopPings() < pinged+2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the laptop stopped pinging")
		}
	}
	if got := without.texts(); len(got) != 0 {
		t.Fatalf("with ResyncEvery < 0, got %v without a sync", got)
	}
	if n := srv.Proxy.Count(func(f *faultproxy.Frame) bool { return pushTo("bob", f) }); n != 2 {
		t.Fatalf("%d pushes to bob dropped, want 2 (one per device)", n)
	}
}

// TestClosedClientNeverLogsInAgain: a program that replaces a Client (a
// watchdog, a new process) closes the old one and starts a new one on the
// same device, whose login revokes the old session. A call on the closed
// Client then gets a 401; logging in again there would take the device's
// session back and kick the newer Client with "replaced".
func TestClosedClientNeverLogsInAgain(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	phone := func(o *Options) { o.Device = "phone" }
	old, _ := connect(t, srv, "alice", phone)
	old.Close()
	newer, rec := connect(t, srv, "alice", phone)
	if _, err := old.Conversations(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Conversations on a closed Client: got %v, want ErrClosed", err)
	}
	if _, err := old.JoinGroup(ctxT(t), "g-none"); !errors.Is(err, ErrClosed) {
		t.Fatalf("JoinGroup on a closed Client: got %v, want ErrClosed", err)
	}
	if n := srv.Logins(); n != 2 {
		t.Fatalf("%d logins, want 2: the closed Client logged in again", n)
	}
	if _, err := newer.SendText(ctxT(t), "bob", "still mine"); err != nil {
		t.Fatalf("the newer Client: %v", err)
	}
	if n := rec.count(StateClosed); n != 0 {
		t.Fatalf("the newer Client was closed %d times", n)
	}
}
