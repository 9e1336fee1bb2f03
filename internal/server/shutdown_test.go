package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// SIGTERM with a client that ignores the drain notice: it is told to
// reconnect elsewhere, stays connected while the --drain-timeout window is
// open, is cut when the window closes, and the node finishes shutting
// down right after, not at the hard stop that cmd/magpie gives the whole
// shutdown (--drain-timeout + 5 s). The window is an injected timer, so
// the test says when it closes instead of measuring the wall clock.
func TestDrainTimeoutCutsClientsThatStay(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = time.Hour // the fake timer below decides
	n := startNode(t, cfg)
	armed := make(chan func(), 1)
	n.drainTimer = func(d time.Duration, expire func()) func() bool {
		if d != cfg.DrainTimeout {
			t.Errorf("drain window %v, want --drain-timeout %v", d, cfg.DrainTimeout)
		}
		armed <- expire
		return func() bool { return true }
	}
	tok := loginToken(t, n, "alice")
	s := authedRaw(t, n, tok)
	waitFor(t, "the connection", func() bool { return n.Gateway().Conns() == 1 })

	done := make(chan error, 1)
	go func() {
		// What cmd/magpie does on SIGTERM.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout+5*time.Second)
		defer cancel()
		done <- n.Shutdown(ctx)
	}()
	expire := <-armed
	// The client reads the notice, then neither leaves nor reconnects.
	for {
		p, err := s.r.ReadFrame()
		if err != nil {
			t.Fatalf("read before the kick: %v", err)
		}
		var env magpiepb.Envelope
		if err := proto.Unmarshal(p, &env); err != nil {
			t.Fatal(err)
		}
		if k := env.GetKick(); k != nil {
			if wire.Code(k.Code) != wire.CodeDraining || !k.Reconnect {
				t.Fatalf("kick %v, want draining with reconnect", k)
			}
			break
		}
	}
	select {
	case err := <-done:
		t.Fatalf("shutdown returned (%v) with the drain window open", err)
	default:
	}
	if got := n.Gateway().Conns(); got != 1 {
		t.Fatalf("%d connections with the drain window open, want the client's 1", got)
	}
	expire() // --drain-timeout has passed
	waitFor(t, "the connection cut", func() bool { return n.Gateway().Conns() == 0 })
	if got := n.Gateway().Stats().Disconnects[wire.CodeDraining]; got != 1 {
		t.Errorf("%d disconnects counted as draining, want 1", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second): // far below the hard stop of an hour
		t.Fatal("shutdown did not finish after the drain window closed")
	}
}
