package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/adapter"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

func frameOf(env *magpiepb.Envelope) []byte {
	b, err := proto.Marshal(env)
	if err != nil {
		panic(err)
	}
	return wire.AppendFrame(nil, b)
}

// FuzzTCPFrames feeds arbitrary bytes to a session over net.Pipe: the
// gateway must not panic, and must close the session once the client goes.
func FuzzTCPFrames(f *testing.F) {
	auth := frameOf(authEnv(1, "good-alice"))
	seeds := [][]byte{
		auth,
		append(append([]byte{}, auth...), frameOf(pingEnv(2, 7))...),
		append(append([]byte{}, auth...), frameOf(sendEnv(3, "hi"))...),
		append(append([]byte{}, auth...), frameOf(authEnv(4, "good-bob"))...),
		append(append([]byte{}, auth...), frameOf(&magpiepb.Envelope{Id: 5})...),
		frameOf(sendEnv(1, "before auth")),
		frameOf(authEnv(1, "bad")),
		auth[:len(auth)-1],
		auth[:3],
		{0, 1, 0, 1},
		{0x7f, 0xff, 0xff, 0xff},
		{0, 0, 0, 0},
		{0, 0, 0, 3, 0xff, 0xff, 0xff},
		append(append([]byte{}, auth...), wire.AppendFrame(nil, []byte{0x08, 0x03, 0x62, 0x04, 0x22, 0x02, 0xff, 0xfe})...), // send with invalid UTF-8 text
	}
	for _, s := range seeds {
		f.Add(s)
	}
	logic, presence := &fakeLogic{}, newFakePresence()
	f.Fuzz(func(t *testing.T, data []byte) {
		g := New(Config{ID: "fuzz", AuthTimeout: time.Second, WriteTimeout: time.Second}, logic, presence, testLogger(t))
		server, peer := net.Pipe()
		if !g.startSession(&tcpTransport{conn: server}, encProto, TCP) {
			t.Fatal("session refused")
		}
		read := make(chan struct{})
		go func() { io.Copy(io.Discard, peer); close(read) }()
		peer.Write(data)
		peer.Close()
		<-read
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := g.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		logic.pending.Wait()
	})
}

// FuzzJSONEnvelope checks the JSON decoder and the transcoding both ways.
func FuzzJSONEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"id":"1","auth":{"token":"good-alice"}}`,
		`{"id":2,"send":{"to_user":"bob","clientMsgId":"m1","text":"hi"}}`,
		`{"id":3,"ping":{"time":"12"}}`,
		`{"id":4,"sync":{"cursors":[{"conversation_id":"c","seq":"3"}],"limit":10}}`,
		`{"id":5,"frobnicate":{"x":[1,2,{"y":null}]}}`,
		`{"id":6,"receipt":{"kind":"RECEIPT_KIND_READ"}}`,
		`{"id":1,"id":2}`,
		`{"id":1e400}`,
		`{"id":"1","auth":{`,
		`[]`, `null`, ``,
		"{\"id\":7,\"send\":{\"text\":\"a\xffb\"}}", `{"id":7,"send":{"text":"\ud800"}}`, `{"id":-1,"ping":{}}`,
		`{"id":7,"receipt":{"seq":-1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := decodeEnvelope(encJSON, data)
		var bad *badFrame
		if errors.As(err, &bad) && !json.Valid(data) {
			t.Fatalf("%q, which is not JSON, was taken for a bad request: %v", data, err)
		}
		if err != nil {
			return
		}
		adapter.Lookup(env)
		b := encodeEnvelope(encProto, env)
		j, err := protoToJSON(b)
		if err != nil {
			t.Fatalf("transcoding a decoded envelope: %v", err)
		}
		back, err := decodeEnvelope(encJSON, j)
		if err != nil {
			t.Fatalf("decoding our own JSON %s: %v", j, err)
		}
		if !proto.Equal(env, back) {
			t.Fatalf("round trip changed %v into %v", env, back)
		}
	})
}
