//go:build linux

package gateway

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/wire"
)

// readers counts the goroutines in a session's reader.
func readers() int {
	buf := make([]byte, 4<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "gateway.(*session).serve(")
}

// TestIdleConnectionsPark: authenticated TCP and WebSocket connections
// with nothing to read keep no reader goroutine; input, deliveries and
// kicks still reach them.
func TestIdleConnectionsPark(t *testing.T) {
	ts := startServer(t, Config{})
	const n = 21
	var cs []*client
	var ids []uint64
	for i := range n {
		c := ts.dial(t, allKinds[i%len(allKinds)])
		c.login(fmt.Sprintf("u%d", i))
		cs = append(cs, c)
		ids = append(ids, ts.g.UserConns(userID(fmt.Sprintf("u%d", i)))...)
	}
	waitFor(t, "idle readers to park", func() bool { return readers() == 0 })
	for round := range 3 {
		for i, c := range cs {
			c.send(pingEnv(uint64(10+round), int64(i)))
			if env := c.read(); env.GetPong().GetTime() != int64(i) {
				t.Fatalf("round %d, conn %d: got %v, want pong %d", round, i, env, i)
			}
		}
	}
	// A frame split across writes, and two frames in one write (TCP).
	ping, _ := proto.Marshal(pingEnv(20, 7))
	f := wire.AppendFrame(nil, ping)
	cs[0].sendRaw(f[:3])
	cs[0].sendRaw(append(f[3:], f...))
	for range 2 {
		if env := cs[0].read(); env.GetPong().GetTime() != 7 {
			t.Fatalf("got %v, want pong 7", env)
		}
	}
	// A request larger than the pooled read buffer.
	for _, c := range cs[:len(allKinds)] {
		c.send(sendEnv(21, strings.Repeat("x", 3*inBufSize)))
		if env := c.read(); env.GetSendAck() == nil {
			t.Fatalf("got %v, want a send ack", env)
		}
	}
	waitFor(t, "readers to park again", func() bool { return readers() == 0 })
	ts.g.Kick(ids, wire.CodeLoggedOut, "bye")
	for _, c := range cs {
		c.expectKick(wire.CodeLoggedOut)
		c.expectClosed()
	}
	waitFor(t, "sessions to end", func() bool { return ts.g.Conns() == 0 })
}
