package gateway

import (
	"errors"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// JSON connections see the field names of the .proto file (snake_case), so
// docs/protocol.md and the schema agree. protojson accepts both snake_case
// and camelCase on input. Unknown fields are ignored, as the protocol says;
// an envelope whose body is unknown therefore decodes with a nil body and is
// answered with CodeUnknownCommand.
var (
	jsonOut = protojson.MarshalOptions{UseProtoNames: true}
	jsonIn  = protojson.UnmarshalOptions{DiscardUnknown: true}
)

// encoding is how one connection's frames are encoded.
type encoding uint8

const (
	encProto encoding = iota // protobuf: TCP, WebSocket binary messages
	encJSON                  // protojson: WebSocket text messages
)

// decodeEnvelope decodes one client frame. An error is a *badFrame (a
// well-formed frame carrying a bad request, answered with error{2}) or
// wraps errUndecodable (garbage, closed with 19); see badframe.go.
func decodeEnvelope(enc encoding, frame []byte) (*magpiepb.Envelope, error) {
	if enc == encJSON {
		return decodeJSON(frame)
	}
	return decodeProto(frame)
}

// encodeEnvelope encodes a server frame for a connection.
func encodeEnvelope(enc encoding, env *magpiepb.Envelope) []byte {
	var b []byte
	var err error
	if enc == encJSON {
		b, err = jsonOut.Marshal(env)
	} else {
		b, err = proto.Marshal(env)
	}
	if err != nil {
		// Envelopes built by the gateway always encode; a failure is a bug.
		panic("gateway: encode envelope: " + err.Error())
	}
	return b
}

// protoToJSON transcodes an encoded Envelope (from logic) for a JSON
// connection.
func protoToJSON(b []byte) ([]byte, error) {
	env := new(magpiepb.Envelope)
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, errors.Join(errUndecodable, err)
	}
	return jsonOut.Marshal(env)
}

func errorEnvelope(id uint64, code wire.Code, msg string, retryAfterMS uint32) *magpiepb.Envelope {
	return &magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Error{Error: &magpiepb.Error{
		Code: uint32(code), Message: msg, RetryAfterMs: retryAfterMS,
	}}}
}

// kickEnvelope is a Kick built as logic builds its own (envelope.Kick):
// reconnect comes from the code's action (wire.Code.KickReconnect), never
// from the caller.
func kickEnvelope(code wire.Code, reason string) *magpiepb.Envelope {
	return envelope.Kick(code, reason)
}
