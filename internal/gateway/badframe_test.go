package gateway

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// sendPayload sends one encoded envelope (TCP: framed).
func (c *client) sendPayload(p []byte) {
	c.t.Helper()
	if c.ws == nil {
		p = wire.AppendFrame(nil, p)
	}
	c.sendRaw(p)
}

// badText encodes env and puts invalid UTF-8 where its text had "@@".
func badText(t testing.TB, env *magpiepb.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("@@")) {
		t.Fatal("no @@ to replace")
	}
	return bytes.Replace(b, []byte("@@"), []byte{0xff, 0xfe}, 1)
}

// TestBadRequestKeepsConnection: a well-formed frame with a bad request in
// it (invalid UTF-8, a duplicate key, a number out of range) gets error{2}
// for its id and the connection stays; nothing of it reaches logic.
func TestBadRequestKeepsConnection(t *testing.T) {
	protoCases := []struct {
		name string
		data func(t testing.TB) []byte
	}{
		{"invalid UTF-8 in text", func(t testing.TB) []byte { return badText(t, sendEnv(7, "a@@b")) }},
		{"invalid UTF-8 in to_user", func(t testing.TB) []byte {
			return badText(t, &magpiepb.Envelope{Id: 7, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "b@@", Text: "x"}}})
		}},
		{"invalid UTF-8 deep in a sync cursor", func(t testing.TB) []byte {
			return badText(t, &magpiepb.Envelope{Id: 7, Body: &magpiepb.Envelope_Sync{Sync: &magpiepb.SyncRequest{
				Cursors: []*magpiepb.Cursor{{ConversationId: "p_1_2"}, {ConversationId: "p_@@"}}}}})
		}},
	}
	jsonCases := []struct{ name, data string }{
		{"invalid UTF-8 in text", "{\"id\":7,\"send\":{\"to_user\":\"bob\",\"text\":\"a\xffb\"}}"},
		{"lone surrogate escape", `{"id":7,"send":{"to_user":"bob","text":"a\ud800b"}}`},
		{"duplicate key", `{"id":7,"send":{"to_user":"bob","to_user":"carol","text":"x"}}`},
		{"duplicate key, two spellings", `{"id":7,"send":{"to_user":"bob","toUser":"carol","text":"x"}}`},
		{"duplicate unknown key", `{"id":7,"ping":{},"x":1,"x":2}`},
		{"two bodies", `{"id":"7","ping":{},"send":{"to_user":"bob","text":"x"}}`},
		{"negative seq", `{"id":7,"receipt":{"conversation_id":"p_1_2","seq":-1}}`},
		{"seq beyond 2^64", `{"id":7,"receipt":{"conversation_id":"p_1_2","seq":"18446744073709551616"}}`},
		{"fractional seq", `{"id":7,"receipt":{"conversation_id":"p_1_2","seq":1.5}}`},
		{"number for a string", `{"id":7,"send":{"to_user":5,"text":"x"}}`},
	}
	type tc struct {
		name string
		kind clientKind
		data func(t testing.TB) []byte
		id   uint64
	}
	var cases []tc
	for _, k := range []clientKind{kindTCP, kindWSProto} {
		for _, c := range protoCases {
			cases = append(cases, tc{k.String() + "/" + c.name, k, c.data, 7})
		}
	}
	for _, c := range jsonCases {
		cases = append(cases, tc{"ws-json/" + c.name, kindWSJSON, func(testing.TB) []byte { return []byte(c.data) }, 7})
	}
	cases = append(cases,
		tc{"ws-json/id out of range", kindWSJSON, func(testing.TB) []byte { return []byte(`{"id":-1,"ping":{}}`) }, 0},
		tc{"ws-json/id beyond 2^64", kindWSJSON, func(testing.TB) []byte { return []byte(`{"id":18446744073709551616,"ping":{}}`) }, 0})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial(t, tt.kind)
			c.login("alice")
			c.sendPayload(tt.data(t))
			if e := c.expectError(tt.id, wire.CodeBadRequest); e.Message == "" {
				t.Fatalf("got %v, want a reason", e)
			}
			c.send(sendEnv(8, "fine")) // the connection stays usable
			if env := c.read(); env.Id != 8 || env.GetSendAck() == nil {
				t.Fatalf("got %v, want SendAck for id 8", env)
			}
			if st := ts.g.Stats(); st.Disconnects[wire.CodeProtocolError] != 0 {
				t.Fatalf("got stats %+v, want no protocol errors", st)
			}
		})
	}
}

// TestBadRequestBeforeAuthCloses: before authentication only a valid auth
// is taken; a bad one is answered with error{2} and the connection closes.
func TestBadRequestBeforeAuthCloses(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(kind.String(), func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial(t, kind)
			if kind == kindWSJSON {
				c.sendRaw([]byte("{\"id\":1,\"auth\":{\"token\":\"good-\xffalice\"}}"))
			} else {
				c.sendPayload(badText(t, authEnv(1, "good-@@alice")))
			}
			c.expectError(1, wire.CodeBadRequest)
			c.expectClosed()
		})
	}
}

// TestGarbageStillCloses: frames that are not a well-formed envelope close
// the connection with 19, as before.
func TestGarbageStillCloses(t *testing.T) {
	overflow := append([]byte{0x08}, bytes.Repeat([]byte{0xff}, 10)...) // id: a varint of 11 bytes
	overflow = append(overflow, 0x01)
	tests := []struct {
		name string
		kind clientKind
		data []byte
	}{
		{"overflowing varint", kindTCP, overflow},
		{"overflowing varint in the 10th byte", kindTCP, append([]byte{0x08}, append(bytes.Repeat([]byte{0xff}, 9), 0x02)...)},
		{"string length beyond the frame", kindWSProto, []byte{0x62, 0x10, 0x0a, 0x7f, 'x'}},
		{"invalid UTF-8 in a truncated body", kindTCP, []byte{0x62, 0x05, 0x22, 0x03, 0xff, 0xfe}},
		{"not an object", kindWSJSON, []byte(`[{"id":1}]`)},
		{"invalid UTF-8 outside an object", kindWSJSON, []byte("\"\xff\"")},
		{"nested 33 deep", kindWSJSON, []byte(`{"id":1,"x":` + strings.Repeat("[", 32) + strings.Repeat("]", 32) + `}`)},
		{"truncated with invalid UTF-8", kindWSJSON, []byte("{\"id\":1,\"send\":{\"text\":\"\xff")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := startServer(t, Config{})
			c := ts.dial(t, tt.kind)
			c.login("alice")
			c.sendPayload(tt.data)
			c.expectKick(wire.CodeProtocolError)
			if c.ws != nil {
				_, err := c.next()
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != 4000+int(wire.CodeProtocolError) {
					t.Fatalf("got %v, want close %d", err, 4000+int(wire.CodeProtocolError))
				}
				c.nc.Close()
			} else {
				c.expectClosed()
			}
		})
	}
}
