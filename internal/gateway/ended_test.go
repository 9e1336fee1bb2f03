package gateway

import (
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

// A session that ends while a connection's auth is in flight (logic read
// the session before it ended, presence does not show the connection yet)
// must not leave that connection open: the gateway closes it when its auth
// completes.
func TestSessionEndedDuringAuthIsClosed(t *testing.T) {
	for _, kind := range []clientKind{kindTCP, kindWSProto, kindWSJSON} {
		t.Run(kind.String(), func(t *testing.T) {
			ts := startServer(t, Config{})
			ts.logic.mu.Lock()
			ts.logic.authEntered, ts.logic.authBlock = make(chan struct{}, 1), make(chan struct{})
			ts.logic.mu.Unlock()
			c := ts.dial(t, kind)
			c.send(authEnv(1, "good-alice"))
			<-ts.logic.authEntered
			kick := encodeEnvelope(encProto, kickEnvelope(wire.CodeLoggedOut, "logged out everywhere"))
			// Logic knows no connection of the session yet: none listed.
			ts.g.Deliver(&clusterpb.Delivery{Envelope: kick, CloseCode: uint32(wire.CodeLoggedOut),
				SessionId: "s-alice", UserId: userID("alice")})
			close(ts.logic.authBlock)
			if k := c.expectKick(wire.CodeLoggedOut); k.Reason != "logged out everywhere" {
				t.Fatalf("kick %v, want the logout's reason", k)
			}
			c.expectClosed()
		})
	}
}

// An ended session's connections close even when logic did not list them
// (presence had not caught up); other sessions of the user stay.
func TestSessionEndedClosesUnlistedConnections(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := ts.dial(t, kindTCP), ts.dial(t, kindWSProto)
	a.login("alice")
	b.login("alice")
	other := ts.dial(t, kindTCP)
	other.login("bob")
	kick := encodeEnvelope(encProto, kickEnvelope(wire.CodeLoggedOut, "session ended"))
	ts.g.Deliver(&clusterpb.Delivery{Envelope: kick, CloseCode: uint32(wire.CodeLoggedOut), SessionId: "s-alice", UserId: userID("alice")})
	for _, c := range []*client{a, b} {
		c.expectKick(wire.CodeLoggedOut)
		c.expectClosed()
	}
	other.send(pingEnv(2, 1))
	if env := other.read(); env.GetPong() == nil {
		t.Fatalf("bob got %v, want a pong", env)
	}
}

// A connection is closed when its token expires, even one that only pings.
func TestTokenExpiryClosesConnection(t *testing.T) {
	for _, kind := range []clientKind{kindTCP, kindWSProto, kindWSJSON} {
		t.Run(kind.String(), func(t *testing.T) {
			ts := startServer(t, Config{})
			expires := time.Now().Add(300 * time.Millisecond)
			ts.logic.mu.Lock()
			ts.logic.expiresMs = expires.UnixMilli()
			ts.logic.mu.Unlock()
			c := ts.dial(t, kind)
			c.login("alice")
			c.send(pingEnv(2, 1)) // alive, and pinging does not reach logic
			if env := c.read(); env.GetPong() == nil {
				t.Fatalf("got %v, want a pong", env)
			}
			kick := c.expectKick(wire.CodeSessionExpired)
			if kick.Reconnect {
				t.Fatalf("kick %v, want session_expired without reconnect", kick)
			}
			if now := time.Now(); now.Before(expires.Add(-10 * time.Millisecond)) {
				t.Fatalf("closed %v before the expiry", expires.Sub(now))
			}
			c.expectClosed()
		})
	}
}
