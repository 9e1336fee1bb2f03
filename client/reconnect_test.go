package client

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client/clienttest"
	"github.com/magpie-im/magpie/proto/magpiepb"
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
	srv := newServer(t, "alice", "bob")
	old := srv.Gateway()
	alice, rec := connect(t, srv, "alice", func(o *Options) { o.Device = "phone" })
	if srv.OnlineAt(old, "alice") != 1 {
		t.Fatal("alice is not on the first gateway")
	}
	// The first gateway drains: it still accepts connections, but the
	// server routes logins elsewhere.
	next := srv.AddGateway(t)
	srv.RouteLogins(next)
	srv.Kick("alice", wire.CodeDraining)
	clienttest.WaitFor(t, "ready on the new gateway", func() bool {
		return rec.count(StateReady) == 2 && srv.OnlineAt(next, "alice") == 1
	})
	clienttest.WaitFor(t, "nothing left on the draining gateway", func() bool { return srv.OnlineAt(old, "alice") == 0 })
	// The token is still good: the client asks for a gateway, no login.
	if got, routes := srv.LoginDevices(), srv.Routes(); !slices.Equal(got, []string{"phone"}) || routes != 1 {
		t.Fatalf("logins %v and %d reroutes, want no new login and one GET /v1/gateway", got, routes)
	}
	if _, err := alice.SendText(ctxT(t), "bob", "moved"); err != nil {
		t.Fatal(err)
	}
}

func TestDeadGatewayLeadsToRerouteAfterTwoFailedDials(t *testing.T) {
	srv := newServer(t, "alice")
	doomed := srv.AddGateway(t)
	srv.RouteLogins(doomed)
	logs := newLogCounter()
	_, rec := connect(t, srv, "alice", func(o *Options) { o.Device = "laptop"; o.Logger = slog.New(logs) })
	if srv.OnlineAt(doomed, "alice") != 1 {
		t.Fatal("alice is not on the doomed gateway")
	}
	// kill -9: the listener is gone (dials are refused) and the
	// connection drops; the token the client holds is still valid.
	srv.RouteLogins(srv.Gateway())
	srv.KillGateway(doomed)
	clienttest.WaitFor(t, "ready on the live gateway", func() bool {
		return rec.count(StateReady) == 2 && srv.OnlineAt(srv.Gateway(), "alice") == 1
	})
	if got, routes := srv.LoginDevices(), srv.Routes(); !slices.Equal(got, []string{"laptop"}) || routes != 1 {
		t.Fatalf("logins %v and %d reroutes, want no new login and one GET /v1/gateway", got, routes)
	}
	if f, r := logs.count("reconnect failed"), logs.count("gateway unreachable; asking for another"); f != 2 || r != 1 {
		t.Fatalf("%d failed reconnects and %d reroutes logged, want 2 failed dials, then 1 reroute", f, r)
	}
}

func TestPeriodicResyncDeliversALostLastMessage(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	srv.SetHeartbeat(1)
	alice, _ := connect(t, srv, "alice")
	_, withResync := connect(t, srv, "bob", func(o *Options) { o.Device = "phone"; o.ResyncEvery = time.Millisecond })
	_, without := connect(t, srv, "bob", func(o *Options) { o.Device = "laptop"; o.ResyncEvery = -1 })
	// bob's live push of alice's last message is lost, and no later
	// message reveals the gap.
	srv.SetDropPush(func(to string, m *magpiepb.Message) bool { return to == "bob" })
	if _, err := alice.SendText(ctxT(t), "bob", "the last word"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, withResync, "1:the last word")
	// The device with the resync off waits for a later message or a
	// reconnect; more heartbeats do not bring it.
	time.Sleep(1500 * time.Millisecond)
	if got := without.texts(); len(got) != 0 {
		t.Fatalf("with ResyncEvery < 0, got %v without a sync", got)
	}
}
