package gateway

import (
	"context"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

var allKinds = []clientKind{kindTCP, kindWSProto, kindWSJSON}

func TestAuthOK(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(kind.String(), func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial(t, kind)
			ok := c.login("alice")
			if ok.Username != "alice" || ok.HeartbeatSeconds != 30 {
				t.Fatalf("got %v, want alice with heartbeat_seconds 30", ok)
			}
			ids := ts.g.UserConns(userID("alice"))
			if len(ids) != 1 {
				t.Fatalf("got conns %v, want one", ids)
			}
			if st := ts.g.Stats(); st.Auths != 1 || st.ConnsByKind[TCP]+st.ConnsByKind[WebSocket] != 1 {
				t.Fatalf("got stats %+v, want 1 auth and 1 conn", st)
			}
			c.send(sendEnv(7, "hi"))
			if env := c.read(); env.Id != 7 || env.GetSendAck().GetClientMsgId() != "m1" {
				t.Fatalf("got %v, want SendAck for id 7", env)
			}
			c.send(pingEnv(8, 12345))
			if env := c.read(); env.Id != 8 || env.GetPong().GetTime() != 12345 {
				t.Fatalf("got %v, want Pong{12345} for id 8", env)
			}
			c.nc.Close()
			waitFor(t, "disconnect", func() bool { return ts.g.Conns() == 0 })
			if con, dis := ts.presence.counts(ids[0]); con != 1 || dis != 1 {
				t.Fatalf("presence Connected %d, Disconnected %d times, want 1 and 1", con, dis)
			}
		})
	}
}

// TestRequests covers one exchange after (or instead of) logging in.
func TestRequests(t *testing.T) {
	tests := []struct {
		name     string
		login    bool
		send     *magpiepb.Envelope
		wantCode wire.Code // Error code expected, 0: see wantBody
		closes   bool
	}{
		{"bad token", false, authEnv(3, "bad"), wire.CodeUnauthenticated, true},
		{"request before auth", false, sendEnv(3, "x"), wire.CodeNotAuthenticated, true},
		{"ping before auth", false, pingEnv(3, 1), wire.CodeNotAuthenticated, true},
		{"second auth", true, authEnv(3, "good-alice"), wire.CodeAlreadyAuthed, false},
		{"empty body", true, &magpiepb.Envelope{Id: 3}, wire.CodeUnknownCommand, false},
		{"server body", true, &magpiepb.Envelope{Id: 3, Body: &magpiepb.Envelope_Kick{Kick: &magpiepb.Kick{}}}, wire.CodeUnknownCommand, false},
	}
	for _, kind := range allKinds {
		for _, tt := range tests {
			t.Run(kind.String()+"/"+tt.name, func(t *testing.T) {
				ts := startServer(t, Config{})
				c := ts.dial(t, kind)
				if tt.login {
					c.login("alice")
				}
				c.send(tt.send)
				c.expectError(3, tt.wantCode)
				if tt.closes {
					c.expectClosed()
					return
				}
				c.send(pingEnv(4, 9)) // the connection stays usable
				if env := c.read(); env.GetPong() == nil || env.Id != 4 {
					t.Fatalf("got %v, want Pong for id 4", env)
				}
			})
		}
	}
}

func TestUnknownFieldIsUnknownCommand(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t, kindTCP)
	c.login("alice")
	// id 5, then field 99 (a body from a future version), length-delimited.
	b := []byte{0x08, 0x05, 0x9a, 0x06, 0x00}
	c.sendRaw(wire.AppendFrame(nil, b))
	c.expectError(5, wire.CodeUnknownCommand)
}

func TestTimeouts(t *testing.T) {
	ts := startServer(t, Config{AuthTimeout: 100 * time.Millisecond, HeartbeatTimeout: 200 * time.Millisecond})
	for _, kind := range allKinds {
		t.Run(kind.String()+"/auth", func(t *testing.T) {
			c := ts.dial(t, kind)
			if k := c.expectKick(wire.CodeAuthTimeout); !k.Reconnect {
				t.Errorf("got %v, want reconnect", k)
			}
			c.expectClosed()
		})
		t.Run(kind.String()+"/heartbeat", func(t *testing.T) {
			c := ts.dial(t, kind)
			c.login("alice")
			c.expectKick(wire.CodeHeartbeatTimeout)
			c.expectClosed()
		})
	}
}

func TestTCPBadFrames(t *testing.T) {
	header := func(n uint32) []byte { return binary.BigEndian.AppendUint32(nil, n) }
	auth, _ := proto.Marshal(authEnv(1, "good-alice"))
	tests := []struct {
		name     string
		data     []byte
		wantKick wire.Code // 0: no Kick, the server just closes
	}{
		{"limit+1", append(header(wire.MaxFrame+1), make([]byte, 100)...), wire.CodeTooLarge},
		{"0x7fffffff without body", header(0x7fffffff), wire.CodeTooLarge},
		{"0xffffffff", header(0xffffffff), wire.CodeTooLarge},
		{"empty frame", header(0), wire.CodeProtocolError},
		{"garbage protobuf", append(header(6), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), wire.CodeProtocolError},
		{"garbage text", []byte("GET / HTTP/1.1\r\n\r\n"), wire.CodeTooLarge},
		{"truncated frame", wire.AppendFrame(nil, auth)[:7], 0},
		{"truncated header", []byte{0, 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial(t, kindTCP)
			c.sendRaw(tt.data)
			if tt.wantKick == 0 {
				c.conn.(interface{ CloseWrite() error }).CloseWrite()
			} else {
				c.expectKick(tt.wantKick)
			}
			c.expectClosed()
			waitFor(t, "disconnect", func() bool { return ts.g.Conns() == 0 })
			if n := ts.g.Stats().Disconnects[tt.wantKick]; n != 1 {
				t.Fatalf("got %d disconnects with code %v, want 1", n, tt.wantKick)
			}
		})
	}
}

func TestTCPOneByteAtATime(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t, kindTCP)
	c.conn.(interface{ SetNoDelay(bool) error }).SetNoDelay(true)
	b, _ := proto.Marshal(authEnv(1, "good-alice"))
	for _, x := range wire.AppendFrame(nil, b) {
		c.sendRaw([]byte{x})
	}
	if env := c.read(); env.GetAuthOk() == nil {
		t.Fatalf("got %v, want AuthOK", env)
	}
}

func TestRateLimit(t *testing.T) {
	ts := startServer(t, Config{RateLimit: 0.01, RateBurst: 2})
	c := ts.dial(t, kindTCP)
	c.login("alice")
	for i := uint64(10); i < 12; i++ {
		c.send(pingEnv(i, 1))
		if env := c.read(); env.GetPong() == nil {
			t.Fatalf("got %v, want Pong", env)
		}
	}
	c.send(sendEnv(12, "x"))
	if e := c.expectError(12, wire.CodeRateLimited); e.RetryAfterMs == 0 {
		t.Fatalf("got %v, want retry_after_ms", e)
	}
	if n := ts.g.Stats().RateLimited; n != 1 {
		t.Fatalf("got RateLimited %d, want 1", n)
	}
}

func TestMaxInFlight(t *testing.T) {
	ts := startServer(t, Config{MaxInFlight: 2})
	ts.logic.mu.Lock()
	ts.logic.hold = true
	ts.logic.mu.Unlock()
	c := ts.dial(t, kindTCP)
	c.login("alice")
	for i := uint64(10); i < 13; i++ {
		c.send(sendEnv(i, "x"))
	}
	if e := c.expectError(12, wire.CodeRateLimited); e.RetryAfterMs == 0 {
		t.Fatalf("got %v, want retry_after_ms", e)
	}
	ts.logic.release()
	got := map[uint64]bool{}
	for range 2 {
		env := c.read()
		if env.GetSendAck() == nil {
			t.Fatalf("got %v, want SendAck", env)
		}
		got[env.Id] = true
	}
	if !got[10] || !got[11] {
		t.Fatalf("got acks for %v, want 10 and 11", got)
	}
}

func TestForwardError(t *testing.T) {
	ts := startServer(t, Config{})
	ts.logic.mu.Lock()
	ts.logic.down = true
	ts.logic.mu.Unlock()
	c := ts.dial(t, kindWSJSON)
	c.login("alice")
	c.send(sendEnv(5, "x"))
	c.expectError(5, wire.CodeUnavailable)
}

func TestShutdownTwice(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t, kindTCP)
	c.login("alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- ts.g.Shutdown(ctx) }()
	}
	c.expectKick(wire.CodeDraining)
	c.nc.Close()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if err := ts.g.Shutdown(ctx); err != nil {
		t.Fatalf("third Shutdown: %v", err)
	}
}

// TestTCPTrickle: a frame trickled a byte at a time must still complete
// within the read deadline (the auth timeout before auth, the heartbeat
// timeout after): the deadline is set once per frame, not moved by each
// byte, so a client cannot hold a connection open with a byte a tick.
func TestTCPTrickle(t *testing.T) {
	auth, _ := proto.Marshal(authEnv(1, "good-alice"))
	// A send of a few hundred bytes: it takes seconds to trickle.
	send, _ := proto.Marshal(sendEnv(2, strings.Repeat("x", 200)))
	tests := []struct {
		name  string
		login bool
		frame []byte
		kick  wire.Code
	}{
		{"before auth", false, wire.AppendFrame(nil, auth), wire.CodeAuthTimeout},
		{"after auth", true, wire.AppendFrame(nil, send), wire.CodeHeartbeatTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{AuthTimeout: 300 * time.Millisecond, HeartbeatTimeout: 300 * time.Millisecond})
			c := ts.dial(t, kindTCP)
			c.conn.(interface{ SetNoDelay(bool) error }).SetNoDelay(true)
			if tt.login {
				c.login("alice")
			}
			// One byte every 50 ms: each byte well within the timeout, the
			// whole frame far beyond it.
			sent := make(chan int, 1)
			go func() {
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				i := 0
				for ; i < len(tt.frame); i++ {
					<-tick.C
					if _, err := c.conn.Write(tt.frame[i : i+1]); err != nil {
						break
					}
				}
				sent <- i
			}()
			c.expectKick(tt.kick)
			c.expectClosed()
			if i := <-sent; i >= len(tt.frame) {
				t.Fatalf("the whole frame (%d bytes) was taken", i)
			}
		})
	}
}
