package logic

import (
	"context"
	"errors"
	"testing"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

// A full pool of read requests answers unavailable with a retry hint at
// once, and a read that holds a slot ends with the Service.
func TestReadPoolFull(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.MaxReads = 1 })
	alice := login(t, s, "alice", "", "").Identity
	started, release := make(chan struct{}), make(chan struct{})
	s.Read(alice, FailFunc(func(err error) { t.Errorf("first read failed: %v", err) }), func(ctx context.Context, _ Identity) {
		close(started)
		<-release
	})
	<-started
	got := make(chan error, 1)
	s.Read(alice, FailFunc(func(err error) { got <- err }), func(context.Context, Identity) { t.Error("second read ran with the pool full") })
	err := <-got
	var e *Error
	if !errors.As(err, &e) || Code(err) != wire.CodeUnavailable || RetryAfter(err) <= 0 {
		t.Fatalf("second read: %v, want unavailable with retry_after_ms", err)
	}
	close(release)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Read(alice, FailFunc(func(err error) { got <- err }), func(context.Context, Identity) { t.Error("a read ran after Shutdown") })
	if err := <-got; Code(err) != wire.CodeUnavailable {
		t.Fatalf("read after Shutdown: %v, want unavailable", err)
	}
}

// An MQTT connection (exclusive) replaces the device's MQTT connections on
// other gateways, and nothing else: not its own gateway's (the gateway does
// that itself), not another device's, not a Magpie-protocol connection of
// the same device.
func TestExclusiveConnTakesOverDevice(t *testing.T) {
	s, bus := newTestService(t, nil)
	res := login(t, s, "alice", "dev1", "")
	first, err := s.AuthenticateConn(context.Background(), res.Token, &clusterpb.ConnRef{Gateway: "gw1", Conn: 1, Exclusive: true})
	if err != nil || !first.Conn.Exclusive {
		t.Fatalf("first: %+v, %v", first.Conn, err)
	}
	uid := first.Conn.UserId
	bus.Add(&clusterpb.ConnRef{Gateway: "gw1", Conn: 2, UserId: uid, Device: "dev1"})                   // Magpie protocol
	bus.Add(&clusterpb.ConnRef{Gateway: "gw2", Conn: 3, UserId: uid, Device: "other", Exclusive: true}) // another device
	bus.Add(&clusterpb.ConnRef{Gateway: "gw3", Conn: 4, UserId: uid, Device: "dev1", Exclusive: true})  // local to gw3
	if len(bus.take()) != 0 {
		t.Fatal("the first connection kicked something")
	}

	if _, err := s.AuthenticateConn(context.Background(), res.Token, &clusterpb.ConnRef{Gateway: "gw3", Conn: 9, Exclusive: true}); err != nil {
		t.Fatal(err)
	}
	d := bus.take()
	if len(d) != 1 || d[0].gateway != "gw1" || len(d[0].conns) != 1 || d[0].conns[0] != 1 || d[0].close != uint32(wire.CodeReplaced) {
		t.Fatalf("deliveries %+v, want gw1's connection 1 closed as replaced", d)
	}
}
