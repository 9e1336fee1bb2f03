package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

func TestWebSocketHandshake(t *testing.T) {
	tests := []struct {
		name       string
		allowed    []string
		origin     string
		protocols  []string
		wantStatus int    // 0: the upgrade succeeds
		wantProto  string // negotiated subprotocol
	}{
		{"no origin, no subprotocol", nil, "", nil, 0, ""},
		{"same host", nil, "http://HOST", []string{wire.SubprotocolProto}, 0, wire.SubprotocolProto},
		{"foreign origin", nil, "http://evil.example", nil, http.StatusForbidden, ""},
		{"allowlisted origin", []string{"https://app.example"}, "https://app.example", []string{wire.SubprotocolJSON}, 0, wire.SubprotocolJSON},
		{"not allowlisted", []string{"https://app.example"}, "https://evil.example", nil, http.StatusForbidden, ""},
		{"any origin", []string{"*"}, "https://evil.example", nil, 0, ""},
		{"unknown subprotocol", nil, "", []string{"mqtt"}, http.StatusBadRequest, ""},
		{"client preference", nil, "", []string{"mqtt", wire.SubprotocolJSON, wire.SubprotocolProto}, 0, wire.SubprotocolJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{AllowedOrigins: tt.allowed})
			hdr := http.Header{}
			if tt.origin != "" {
				origin := tt.origin
				if origin == "http://HOST" {
					origin = ts.http.URL
				}
				hdr.Set("Origin", origin)
			}
			d := websocket.Dialer{Subprotocols: tt.protocols}
			ws, resp, err := d.Dial(ts.wsURL, hdr)
			if tt.wantStatus != 0 {
				if err == nil || resp == nil || resp.StatusCode != tt.wantStatus {
					t.Fatalf("got err %v, resp %v; want status %d", err, resp, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer ws.Close()
			if ws.Subprotocol() != tt.wantProto {
				t.Fatalf("got subprotocol %q, want %q", ws.Subprotocol(), tt.wantProto)
			}
			c := &client{t: t, ws: ws, nc: ws.UnderlyingConn(), json: tt.wantProto != wire.SubprotocolProto}
			c.login("alice")
		})
	}
}

func TestWebSocketBadMessages(t *testing.T) {
	tests := []struct {
		name      string
		kind      clientKind
		msgType   int
		data      []byte
		wantKick  wire.Code
		wantClose int
	}{
		{"oversize proto", kindWSProto, websocket.BinaryMessage, make([]byte, wire.MaxFrame+1), wire.CodeTooLarge, websocket.CloseMessageTooBig},
		{"oversize json", kindWSJSON, websocket.TextMessage, bytes.Repeat([]byte(" "), wire.MaxFrame+1), wire.CodeTooLarge, websocket.CloseMessageTooBig},
		{"invalid json", kindWSJSON, websocket.TextMessage, []byte(`{"id": 1, "auth": {`), wire.CodeProtocolError, 4000 + int(wire.CodeProtocolError)},
		{"json nested deep", kindWSJSON, websocket.TextMessage, append(bytes.Repeat([]byte(`{"x":`), 10000), '1'), wire.CodeProtocolError, 4000 + int(wire.CodeProtocolError)},
		{"binary on json", kindWSJSON, websocket.BinaryMessage, []byte{1, 2}, wire.CodeProtocolError, 4000 + int(wire.CodeProtocolError)},
		{"text on proto", kindWSProto, websocket.TextMessage, []byte(`{}`), wire.CodeProtocolError, 4000 + int(wire.CodeProtocolError)},
		{"garbage proto", kindWSProto, websocket.BinaryMessage, []byte{0xff, 0xff, 0xff}, wire.CodeProtocolError, 4000 + int(wire.CodeProtocolError)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial(t, tt.kind)
			if err := c.ws.WriteMessage(tt.msgType, tt.data); err != nil {
				t.Fatal(err)
			}
			c.expectKick(tt.wantKick)
			_, err := c.next()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tt.wantClose {
				t.Fatalf("got %v, want close code %d", err, tt.wantClose)
			}
			c.nc.Close()
		})
	}
}

func TestWebSocketJSONFieldNames(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t, kindWSJSON)
	// camelCase and snake_case are both accepted on input.
	c.sendRaw([]byte(`{"id":"1","auth":{"token":"good-alice"}}`))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"auth_ok"`)) || !bytes.Contains(b, []byte(`"heartbeat_seconds"`)) {
		t.Fatalf("got %s, want snake_case field names", b)
	}
	c.sendRaw([]byte(`{"id":2,"send":{"toUser":"bob","client_msg_id":"m9","text":"hi"}}`))
	if env := c.read(); env.GetSendAck().GetClientMsgId() != "m9" {
		t.Fatalf("got %v, want SendAck for m9", env)
	}
}

// wsHeader is a client frame header with a zero mask (so the payload goes
// as is).
func wsHeader(fin bool, op byte, n uint64) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0}
	switch {
	case n < 126:
		h = append(h, 0x80|byte(n))
	case n < 1<<16:
		h = binary.BigEndian.AppendUint16(append(h, 0x80|126), uint16(n))
	default:
		h = binary.BigEndian.AppendUint64(append(h, 0x80|127), n)
	}
	return append(h, 0, 0, 0, 0)
}

// TestWebSocketHeaderTooLarge: a frame header announcing more than the
// frame limit gets kick{too_large} and close 1009 at once, not after the
// heartbeat timeout (10 minutes here; the client waits 10 s at most).
func TestWebSocketHeaderTooLarge(t *testing.T) {
	first := make([]byte, wire.MaxFrame/2+1)
	tests := []struct {
		name  string
		login bool
		data  []byte
	}{
		{"2^63-1 before auth", false, wsHeader(true, websocket.BinaryMessage, 1<<63-1)},
		{"2^63-1 after auth", true, wsHeader(true, websocket.BinaryMessage, 1<<63-1)},
		{"2^64-1", true, wsHeader(true, websocket.BinaryMessage, 1<<64-1)},
		{"limit+1", true, wsHeader(true, websocket.BinaryMessage, wire.MaxFrame+1)},
		{"fragments beyond the limit", true, append(append(wsHeader(false, websocket.BinaryMessage, uint64(len(first))), first...),
			wsHeader(true, 0, uint64(len(first)))...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{AuthTimeout: 10 * time.Minute, HeartbeatTimeout: 10 * time.Minute})
			c := ts.dial(t, kindWSProto)
			if tt.login {
				c.login("alice")
			}
			if _, err := c.nc.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			c.expectKick(wire.CodeTooLarge)
			_, err := c.next()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
				t.Fatalf("got %v, want close 1009", err)
			}
			c.nc.Close()
			waitFor(t, "disconnect", func() bool { return ts.g.Conns() == 0 })
		})
	}
}

// TestWebSocketFramesOneByteAtATime: the header watch copes with frames
// split anywhere, control frames between fragments, and a message of
// exactly the limit.
func TestWebSocketFramesOneByteAtATime(t *testing.T) {
	ts := startServer(t, Config{})
	c := ts.dial(t, kindWSProto)
	auth, _ := proto.Marshal(authEnv(1, "good-alice"))
	var b []byte
	b = append(append(b, wsHeader(false, websocket.BinaryMessage, 3)...), auth[:3]...)
	b = append(append(b, wsHeader(true, websocket.PingMessage, 2)...), 'h', 'i')
	b = append(append(b, wsHeader(true, 0, uint64(len(auth)-3))...), auth[3:]...)
	for _, x := range b {
		if _, err := c.nc.Write([]byte{x}); err != nil {
			t.Fatal(err)
		}
	}
	if env := c.read(); env.GetAuthOk() == nil {
		t.Fatalf("got %v, want AuthOK", env)
	}
	// A message of exactly wire.MaxFrame bytes passes the header watch (its
	// content is then undecodable, which is the session's business).
	full := append(wsHeader(true, websocket.BinaryMessage, wire.MaxFrame), make([]byte, wire.MaxFrame)...)
	if _, err := c.nc.Write(full); err != nil {
		t.Fatal(err)
	}
	c.expectKick(wire.CodeProtocolError)
}

// The close codes docs/protocol.md ("Closing") promises a WebSocket
// client, each after its last frame: a kick, or an error for the request
// that could not be carried out.
func TestWebSocketCloseCodes(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		run       func(t *testing.T, ts *testServer, c *client)
		wantClose int
	}{
		{"bad token", Config{}, func(t *testing.T, ts *testServer, c *client) {
			c.send(authEnv(1, "forged"))
			c.expectError(1, wire.CodeUnauthenticated)
		}, 4003},
		{"no auth in time", Config{AuthTimeout: 100 * time.Millisecond}, func(t *testing.T, ts *testServer, c *client) {
			c.expectKick(wire.CodeAuthTimeout)
		}, 4011},
		{"bad request before auth", Config{}, func(t *testing.T, ts *testServer, c *client) {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"id":"3","auth":{"token":"a","token":"b"}}`)); err != nil {
				t.Fatal(err)
			}
			c.expectError(3, wire.CodeBadRequest)
		}, 4002},
		{"request before auth", Config{}, func(t *testing.T, ts *testServer, c *client) {
			c.send(pingEnv(4, 1))
			c.expectError(4, wire.CodeNotAuthenticated)
		}, 4013},
		{"replaced", Config{}, func(t *testing.T, ts *testServer, c *client) {
			c.login("alice")
			ts.g.Kick([]uint64{connOf(t, ts, "alice")}, wire.CodeReplaced, "signed in on another device")
			c.expectKick(wire.CodeReplaced)
		}, 4015},
		{"logged out", Config{}, func(t *testing.T, ts *testServer, c *client) {
			c.login("alice")
			kick, _ := proto.Marshal(kickEnvelope(wire.CodeLoggedOut, "logged out"))
			ts.g.Deliver(&clusterpb.Delivery{Conns: []uint64{connOf(t, ts, "alice")}, Envelope: kick, CloseCode: uint32(wire.CodeLoggedOut)})
			c.expectKick(wire.CodeLoggedOut)
		}, 4016},
		{"silent", Config{HeartbeatTimeout: 200 * time.Millisecond}, func(t *testing.T, ts *testServer, c *client) {
			c.login("alice")
			c.expectKick(wire.CodeHeartbeatTimeout)
		}, 4018},
		{"undecodable", Config{}, func(t *testing.T, ts *testServer, c *client) {
			if err := c.ws.WriteMessage(websocket.TextMessage, []byte(`{"id":`)); err != nil {
				t.Fatal(err)
			}
			c.expectKick(wire.CodeProtocolError)
		}, 4019},
		{"too large", Config{}, func(t *testing.T, ts *testServer, c *client) {
			if err := c.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte(" "), wire.MaxFrame+1)); err != nil {
				t.Fatal(err)
			}
			c.expectKick(wire.CodeTooLarge) // the kick first, then 1009
		}, websocket.CloseMessageTooBig},
		{"draining", Config{}, func(t *testing.T, ts *testServer, c *client) {
			c.login("alice")
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = ts.g.Drain(ctx)
			}()
			c.expectKick(wire.CodeDraining)
		}, websocket.CloseGoingAway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, tt.cfg)
			c := ts.dial(t, kindWSJSON)
			tt.run(t, ts, c)
			_, err := c.next()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != tt.wantClose {
				t.Fatalf("got %v, want close code %d", err, tt.wantClose)
			}
			c.nc.Close()
		})
	}
}

// TestWebSocketFramingViolations: frames RFC 6455 forbids get
// kick{protocol_error}, then close 1002; a ping gets its pong.
func TestWebSocketFramingViolations(t *testing.T) {
	unmasked := wsHeader(true, websocket.BinaryMessage, 1)
	unmasked[1] &^= 0x80
	unmasked = append(unmasked[:2], 0) // no mask key, one payload byte
	rsv := wsHeader(true, websocket.BinaryMessage, 0)
	rsv[0] |= 0x40
	tests := []struct {
		name string
		data []byte
	}{
		{"unmasked", unmasked},
		{"rsv bit", rsv},
		{"unknown opcode", wsHeader(true, 3, 0)},
		{"unknown control opcode", wsHeader(true, 0xb, 0)},
		{"control over 125 bytes", append(wsHeader(true, websocket.PingMessage, 126), make([]byte, 126)...)},
		{"fragmented control", wsHeader(false, websocket.PingMessage, 0)},
		{"continuation without a message", append(wsHeader(true, 0, 1), 1)},
		{"message inside a message", append(append(wsHeader(false, websocket.BinaryMessage, 1), 1), append(wsHeader(true, websocket.BinaryMessage, 1), 1)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial(t, kindWSProto)
			c.login("alice")
			if _, err := c.nc.Write(tt.data); err != nil {
				t.Fatal(err)
			}
			c.expectKick(wire.CodeProtocolError)
			_, err := c.next()
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseProtocolError {
				t.Fatalf("got %v, want close 1002", err)
			}
			c.nc.Close()
		})
	}
	t.Run("ping", func(t *testing.T) {
		ts := startServer(t, Config{})
		c := ts.dial(t, kindWSProto)
		c.login("alice")
		pong := make(chan string, 1)
		c.ws.SetPongHandler(func(data string) error { pong <- data; return nil })
		if err := c.ws.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		c.send(pingEnv(2, 5)) // the reader sees the pong on its way to this answer
		if env := c.read(); env.GetPong().GetTime() != 5 {
			t.Fatalf("got %v, want pong 5", env)
		}
		select {
		case got := <-pong:
			if got != "are you there" {
				t.Fatalf("pong %q", got)
			}
		default:
			t.Fatal("no pong before the answer queued after it")
		}
	})
}
