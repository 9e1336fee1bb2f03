package gateway

import (
	"testing"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

// A logout that reaches the gateway while it is still finishing the auth
// (writing presence) must close the connection, not be dropped.
func TestKickDuringAuthIsApplied(t *testing.T) {
	ts := startServer(t, Config{})
	ts.presence.mu.Lock()
	ts.presence.block, ts.presence.entered = make(chan struct{}), make(chan uint64, 1)
	ts.presence.mu.Unlock()
	c := ts.dial(t, kindTCP)
	c.send(authEnv(1, "good-alice"))
	conn := <-ts.presence.entered
	kick := encodeEnvelope(encProto, kickEnvelope(wire.CodeLoggedOut, "logged out"))
	ts.g.Deliver(&clusterpb.Delivery{Conns: []uint64{conn}, Envelope: kick, CloseCode: uint32(wire.CodeLoggedOut)})
	close(ts.presence.block)
	if k := c.expectKick(wire.CodeLoggedOut); k.Reconnect {
		t.Fatalf("kick %v, want logged_out without reconnect", k)
	}
	c.expectClosed()
}
