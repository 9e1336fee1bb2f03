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
// reconnect elsewhere, then cut when --drain-timeout runs out, and the
// node finishes shutting down right after, not at the hard stop that
// cmd/magpie gives the whole shutdown (--drain-timeout + 5 s).
func TestDrainTimeoutCutsClientsThatStay(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.DrainTimeout = time.Second
	n := startNode(t, cfg)
	tok := loginToken(t, n, "alice")
	s := authedRaw(t, n, tok)
	waitFor(t, "the connection", func() bool { return n.Gateway().Conns() == 1 })

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		// What cmd/magpie does on SIGTERM.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout+5*time.Second)
		defer cancel()
		done <- n.Shutdown(ctx)
	}()
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
	waitFor(t, "the connection cut", func() bool { return n.Gateway().Conns() == 0 })
	cut := time.Since(start)
	if cut < cfg.DrainTimeout {
		t.Errorf("cut %v after SIGTERM, before the %v drain timeout", cut, cfg.DrainTimeout)
	}
	if cut > cfg.DrainTimeout+time.Second {
		t.Errorf("cut %v after SIGTERM, want at the %v drain timeout", cut, cfg.DrainTimeout)
	}
	if got := n.Gateway().Stats().Disconnects[wire.CodeDraining]; got != 1 {
		t.Errorf("%d disconnects counted as draining, want 1", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not finish")
	}
	if took := time.Since(start); took > cfg.DrainTimeout+2*time.Second {
		t.Errorf("shutdown took %v, want it done soon after the %v drain timeout", took, cfg.DrainTimeout)
	}
}
