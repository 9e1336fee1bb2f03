package gateway

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/magpie-im/magpie/internal/jsoncheck"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// A frame the client sent is one of three things (docs/protocol.md,
// "Undecodable frames and bad requests"):
//
//   - a request: it decodes;
//   - a bad request: a well-formed frame that no request may carry. In
//     protobuf, text that is not UTF-8 (proto3 refuses it at decode time);
//     in JSON, invalid UTF-8, a lone surrogate escape, a duplicate key, or a
//     value protojson refuses (a number out of range or of the wrong type,
//     an unknown enum name, two bodies). The envelope's id can still be
//     read, so the client gets error{2} for that request and the
//     connection stays;
//   - garbage: not protobuf, not a JSON object, or nested deeper than
//     wire.MaxJSONDepth. Nothing in it can be trusted, not even an
//     id, so the connection closes with 19 (protocol_error).

// badFrame is a well-formed frame carrying a bad request.
type badFrame struct {
	id  uint64 // the envelope's id, 0 if it has none or it is unreadable
	msg string
}

func (e *badFrame) Error() string { return "gateway: bad request: " + e.msg }

// maxBadMsg bounds the reason echoed to the client.
const maxBadMsg = 200

// newBadFrame keeps the reason valid UTF-8: it quotes the client's token
// (protojson's errors do), and an Error whose message is not UTF-8 cannot
// be encoded (encodeEnvelope panics). So the cut falls between
// characters, and anything else invalid is replaced.
func newBadFrame(id uint64, msg string) *badFrame {
	if len(msg) > maxBadMsg {
		cut := maxBadMsg
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	return &badFrame{id: id, msg: strings.ToValidUTF8(msg, "\ufffd")}
}

// decodeProto decodes a protobuf frame. When proto.Unmarshal refuses it,
// the frame is decoded again as laxEnvelope, the same schema with every
// string field declared bytes: if that succeeds the frame's structure is
// sound and only its text was refused, so it is a bad request.
func decodeProto(frame []byte) (*magpiepb.Envelope, error) {
	env := new(magpiepb.Envelope)
	err := proto.Unmarshal(frame, env)
	if err == nil {
		return env, nil
	}
	m := laxEnvelope().New()
	if proto.Unmarshal(frame, m.Interface()) != nil {
		return nil, errors.Join(errUndecodable, err)
	}
	id := m.Get(m.Descriptor().Fields().ByName("id")).Uint()
	return nil, newBadFrame(id, "text is not valid UTF-8")
}

// laxEnvelope is magpie.v1.Envelope with bytes for strings (built once;
// not registered, so it clashes with nothing).
var laxEnvelope = sync.OnceValue(func() protoreflect.MessageType {
	fdp := protodesc.ToFileDescriptorProto(magpiepb.File_magpie_proto)
	fdp.Name = proto.String("magpie_lax.proto")
	var lax func(ms []*descriptorpb.DescriptorProto)
	lax = func(ms []*descriptorpb.DescriptorProto) {
		for _, m := range ms {
			for _, f := range m.Field {
				if f.GetType() == descriptorpb.FieldDescriptorProto_TYPE_STRING {
					f.Type = descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum()
				}
			}
			lax(m.NestedType)
		}
	}
	lax(fdp.MessageType)
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil { // the schema is ours: a failure is a bug
		panic("gateway: lax envelope: " + err.Error())
	}
	return dynamicpb.NewMessageType(fd.Messages().ByName("Envelope"))
})

// decodeJSON decodes a JSON text frame: jsoncheck first (protojson would
// take a lone surrogate escape and duplicate unknown keys), then protojson.
func decodeJSON(frame []byte) (*magpiepb.Envelope, error) {
	if err := jsoncheck.Check(frame, jsoncheck.Options{MaxDepth: wire.MaxJSONDepth}); err != nil {
		if errors.Is(err, jsoncheck.ErrInvalidText) || errors.Is(err, jsoncheck.ErrDuplicateKey) {
			if id, ok := jsonID(frame); ok {
				return nil, newBadFrame(id, err.Error())
			}
		}
		return nil, errors.Join(errUndecodable, err)
	}
	env := new(magpiepb.Envelope)
	if err := jsonIn.Unmarshal(frame, env); err != nil {
		if id, ok := jsonID(frame); ok {
			return nil, newBadFrame(id, "invalid request: "+err.Error())
		}
		return nil, errors.Join(errUndecodable, err)
	}
	return env, nil
}

// jsonID reads the id of a frame that is well-formed JSON, as protojson
// would (a number or a decimal string); ok is false if the frame is not an
// object. An id that is missing or unreadable is 0.
func jsonID(frame []byte) (id uint64, ok bool) {
	var top map[string]json.RawMessage
	if json.Unmarshal(frame, &top) != nil || top == nil {
		return 0, false
	}
	raw := top["id"]
	var s string
	if json.Unmarshal(raw, &s) != nil {
		s = string(raw)
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, true
	}
	return id, true
}
