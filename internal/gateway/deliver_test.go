package gateway

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

func messageBytes(t testing.TB, text string, size int) []byte {
	t.Helper()
	if size > len(text) {
		text += string(make([]byte, size-len(text)))
	}
	b, err := proto.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: &magpiepb.Message{
		ConversationId: "c1", Seq: 1, Sender: "bob", Text: text,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func connOf(t testing.TB, ts *testServer, user string) uint64 {
	t.Helper()
	ids := ts.g.UserConns(userID(user))
	if len(ids) != 1 {
		t.Fatalf("user %s has conns %v, want one", user, ids)
	}
	return ids[0]
}

func TestDeliver(t *testing.T) {
	ts := startServer(t, Config{})
	users := []string{"tcp1", "tcp2", "proto", "json1", "json2"}
	kinds := []clientKind{kindTCP, kindTCP, kindWSProto, kindWSJSON, kindWSJSON}
	clients := map[string]*client{}
	for i, u := range users {
		clients[u] = ts.dial(t, kinds[i])
		clients[u].login(u)
	}
	unauthed := ts.dial(t, kindTCP)

	// A subset, with an unknown id, across encodings.
	targets := []string{"tcp1", "proto", "json1", "json2"}
	d := &clusterpb.Delivery{Envelope: messageBytes(t, "hello", 0), Conns: []uint64{999999}}
	for _, u := range targets {
		d.Conns = append(d.Conns, connOf(t, ts, u))
	}
	ts.g.Deliver(d)
	for _, u := range targets {
		if env := clients[u].read(); env.GetMessage().GetText() != "hello" {
			t.Fatalf("%s got %v, want the message", u, env)
		}
	}
	// Everyone, then a ping: tcp2 must see the broadcast first, not "hello".
	ts.g.Deliver(&clusterpb.Delivery{Envelope: messageBytes(t, "all", 0), Broadcast: true})
	for _, u := range users {
		if env := clients[u].read(); env.GetMessage().GetText() != "all" {
			t.Fatalf("%s got %v, want the broadcast", u, env)
		}
	}
	unauthed.send(pingEnv(3, 1))
	unauthed.expectError(3, wire.CodeNotAuthenticated) // and not the broadcast
}

func TestDeliverCloseCode(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := ts.dial(t, kindTCP), ts.dial(t, kindWSJSON)
	a.login("alice")
	b.login("bob")
	kick, _ := proto.Marshal(kickEnvelope(wire.CodeLoggedOut, "logged out"))
	ts.g.Deliver(&clusterpb.Delivery{
		Conns: []uint64{connOf(t, ts, "alice"), connOf(t, ts, "bob")}, Envelope: kick, CloseCode: uint32(wire.CodeLoggedOut),
	})
	for _, c := range []*client{a, b} {
		if k := c.expectKick(wire.CodeLoggedOut); k.Reconnect {
			t.Fatalf("got %v, want reconnect false", k)
		}
		c.expectClosed()
	}
	waitFor(t, "disconnects", func() bool { return ts.g.Stats().Disconnects[wire.CodeLoggedOut] == 2 })
}

func TestKick(t *testing.T) {
	ts := startServer(t, Config{})
	a, b := ts.dial(t, kindTCP), ts.dial(t, kindWSProto)
	a.login("alice")
	b.login("bob")
	ts.g.Kick([]uint64{connOf(t, ts, "alice"), 424242}, wire.CodeReplaced, "another device")
	a.expectKick(wire.CodeReplaced)
	a.expectClosed()
	b.send(pingEnv(2, 2))
	if env := b.read(); env.GetPong() == nil {
		t.Fatalf("got %v, want Pong", env)
	}
}

func TestSlowConsumer(t *testing.T) {
	ts := startServer(t, Config{SendQueue: 8, WriteTimeout: 300 * time.Millisecond})
	slow, fast := ts.dial(t, kindTCP), ts.dial(t, kindTCP)
	slow.login("slow")
	fast.login("fast")
	slow.conn.(*net.TCPConn).SetReadBuffer(4096)
	ids := []uint64{connOf(t, ts, "slow"), connOf(t, ts, "fast")}
	msg := messageBytes(t, "x", 60<<10)
	for i := 0; ts.g.Stats().SlowConsumers == 0; i++ {
		if i > 10000 {
			t.Fatal("the client that never reads was not disconnected")
		}
		ts.g.Deliver(&clusterpb.Delivery{Conns: ids, Envelope: msg})
		if env := fast.read(); env.GetMessage() == nil {
			t.Fatalf("got %v, want a message", env)
		}
	}
	waitFor(t, "slow consumer disconnect", func() bool { return ts.g.Stats().Disconnects[wire.CodeSlowConsumer] == 1 })
	ts.g.Deliver(&clusterpb.Delivery{Conns: ids, Envelope: messageBytes(t, "after", 0)})
	if env := fast.read(); env.GetMessage().GetText() != "after" {
		t.Fatalf("got %v, want the message after", env)
	}
}

func TestDrain(t *testing.T) {
	ts := startServer(t, Config{})
	var clients []*client
	for i, kind := range allKinds {
		c := ts.dial(t, kind)
		c.login(string(rune('a' + i)))
		clients = append(clients, c)
	}
	clients = append(clients, ts.dial(t, kindTCP)) // not authenticated
	waitFor(t, "connections", func() bool { return ts.g.Conns() == 4 })
	var ids []uint64
	for i := range allKinds {
		ids = append(ids, connOf(t, ts, string(rune('a'+i))))
	}
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- ts.g.Drain(ctx)
	}()
	for _, c := range clients {
		if k := c.expectKick(wire.CodeDraining); !k.Reconnect {
			t.Fatalf("got %v, want reconnect", k)
		}
		c.expectClosed()
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	for _, id := range ids {
		if con, dis := ts.presence.counts(id); con != 1 || dis != 1 {
			t.Fatalf("conn %d: presence Connected %d, Disconnected %d times, want 1 and 1", id, con, dis)
		}
	}
	if c, err := net.Dial("tcp", ts.tcpAddr); err == nil {
		c.Close()
		t.Fatal("dial after Drain succeeded")
	}
}

func TestDrainDeadline(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t, kindTCP)
	c.login("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The client never reads nor closes: Drain gives up and closes it.
	if err := ts.g.Drain(ctx); err != context.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
	waitFor(t, "close", func() bool { return ts.g.Conns() == 0 })
}

// TestRestartedGatewayDoesNotReuseConnIDs: a gateway restarted under the
// same id, while logic still holds its last run's presence entries, must
// not hand an old connection id to a new connection: a delivery for the
// old one (alice's message, or a kick for her revoked session) would go
// to whoever drew the id (the 12:35 CI run: other users' messages shown
// on a device, which was then kicked "replaced").
func TestRestartedGatewayDoesNotReuseConnIDs(t *testing.T) {
	first := startServer(t, Config{ID: "gw-same"})
	alice := first.dial(t, kindTCP)
	alice.login("alice")
	old := connOf(t, first, "alice")

	again := startServer(t, Config{ID: "gw-same"})
	bob := again.dial(t, kindTCP)
	bob.login("bob")
	if id := connOf(t, again, "bob"); id == old {
		t.Fatalf("the restarted gateway gave bob alice's old connection id %d", id)
	}
	again.g.Deliver(&clusterpb.Delivery{Envelope: messageBytes(t, "for alice", 0), Conns: []uint64{old}})
	bob.send(pingEnv(7, 1))
	if env := bob.read(); env.GetMessage() != nil {
		t.Fatalf("bob got alice's message %q", env.GetMessage().GetText())
	}
}
