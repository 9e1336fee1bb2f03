package gateway

import (
	"testing"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

// A session's kick closes that session's connections only, even when
// presence lists a connection id that now belongs to someone else (an
// entry left by a gateway process that was killed, its number reused).
func TestSessionKickIgnoresListedStrangers(t *testing.T) {
	ts := startServer(t, Config{})
	a := ts.dial(t, kindTCP)
	a.login("alice")
	bob := ts.dial(t, kindTCP)
	bob.login("bob")
	kick := encodeEnvelope(encProto, kickEnvelope(wire.CodeReplaced, "signed in on another device"))
	ts.g.Deliver(&clusterpb.Delivery{Conns: []uint64{connOf(t, ts, "bob")}, Envelope: kick,
		CloseCode: uint32(wire.CodeReplaced), SessionId: "s-alice", UserId: userID("alice")})
	a.expectKick(wire.CodeReplaced)
	a.expectClosed()
	bob.send(pingEnv(2, 1))
	if env := bob.read(); env.GetPong() == nil {
		t.Fatalf("bob got %v, want a pong: another session's kick closed him", env)
	}
}
