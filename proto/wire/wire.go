// Package wire is Magpie's client protocol on the wire: frame layout,
// limits, the protocol version, and the table of error and disconnect
// codes. It imports only the standard library and the generated protobuf
// package, so the SDK, the gateway and third parties share one definition.
//
// Protocol flow (docs/protocol.md has a full example in JSON):
//
//	client                                   gateway
//	  | -- connect (TCP, or WebSocket /v1/ws) -->|
//	  | -- Envelope{id:1, auth{token}} --------->|  must arrive within AuthTimeout
//	  | <-- Envelope{id:1, auth_ok} -------------|  or error + close
//	  | -- Envelope{id:2, sync{cursors}} ------->|  fetch what was missed
//	  | <-- Envelope{id:2, sync_result} ---------|
//	  | -- Envelope{id:3, send{...}} ----------->|
//	  | <-- Envelope{id:3, send_ack{seq}} -------|  only after the message is committed
//	  | <-- Envelope{id:0, message} -------------|  live deliveries (best effort)
//	  | -- Envelope{id:4, receipt{delivered}} -->|
//	  | -- Envelope{id:5, ping} ---------------->|  at least every heartbeat interval
//	  | <-- Envelope{id:5, pong} ----------------|
//	  | <-- Envelope{id:0, kick{code}} ----------|  last frame before the server closes
//
// TCP framing: a 4-byte big-endian length, then that many bytes of a
// protobuf-encoded Envelope. WebSocket: one Envelope per message; binary
// messages carry protobuf (subprotocol magpie.v1.proto), text messages carry
// protojson (subprotocol magpie.v1.json).
//
// All functions are safe for concurrent use; a Reader is not.
package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Version is the protocol version, part of the WebSocket subprotocol names.
const Version = 1

const (
	// SubprotocolProto selects protobuf in binary WebSocket messages.
	SubprotocolProto = "magpie.v1.proto"
	// SubprotocolJSON selects protojson in text WebSocket messages.
	SubprotocolJSON = "magpie.v1.json"
)

// Limits. They are part of the protocol: a frame or field beyond them is
// refused with CodeTooLarge or CodeBadRequest.
const (
	HeaderSize        = 4
	MaxFrame          = 64 << 10 // bytes of one Envelope
	MaxText           = 16 << 10 // bytes of a message's text
	MaxClientMsgID    = 64       // bytes
	MaxUsername       = 32
	MinUsername       = 2
	MaxPassword       = 256 // bytes; longer passwords are refused before hashing
	MaxDevice         = 64
	MaxToken          = 1024
	MaxCursors        = 10000 // cursors in one SyncRequest
	MaxConversationID = 64
	MaxJSONDepth      = 32 // arrays and objects open at once in a JSON frame or body
	DefaultPageLimit  = 100
	MaxPageLimit      = 500
)

var (
	ErrFrameTooLarge = errors.New("wire: frame exceeds limit")
	ErrEmptyFrame    = errors.New("wire: empty frame")
)

// AppendFrame appends the TCP frame of payload to dst.
func AppendFrame(dst, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// Reader reads length-prefixed frames. A partial frame blocks until the rest
// arrives; the returned slice is valid until the next call.
type Reader struct {
	r   *bufio.Reader
	buf []byte
	max int
}

// NewReader reads frames of at most max bytes (MaxFrame if max <= 0).
func NewReader(r io.Reader, bufSize, max int) *Reader {
	if max <= 0 {
		max = MaxFrame
	}
	if bufSize <= 0 {
		bufSize = 512
	}
	return &Reader{r: bufio.NewReaderSize(r, bufSize), max: max}
}

// ReadFrame returns the next frame's payload.
func (fr *Reader) ReadFrame() ([]byte, error) {
	var hdr [HeaderSize]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return nil, ErrEmptyFrame
	}
	if uint64(n) > uint64(fr.max) {
		return nil, fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, n, fr.max)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	fr.buf = fr.buf[:n]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	// Release large buffers so an idle connection stays small.
	out := fr.buf
	if cap(fr.buf) > 4096 {
		fr.buf = nil
	}
	return out, nil
}

// ValidText reports whether s is acceptable message text.
func ValidText(s string) error {
	switch {
	case s == "":
		return errors.New("text is empty")
	case len(s) > MaxText:
		return fmt.Errorf("text is %d bytes, limit %d", len(s), MaxText)
	case !utf8.ValidString(s):
		return errors.New("text is not valid UTF-8")
	}
	return nil
}

// ValidName reports whether s is an acceptable username: 2-32 characters of
// letters, digits, '_' and '-'. Names never contain NATS subject characters.
func ValidName(s string) error {
	if len(s) < MinUsername || len(s) > MaxUsername {
		return fmt.Errorf("username must be %d-%d characters", MinUsername, MaxUsername)
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("username may contain only letters, digits, '_' and '-'")
		}
	}
	return nil
}

// ValidToken reports whether s is a usable identifier such as a client
// message id or device name: 1..max bytes of printable ASCII without spaces.
func ValidToken(s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("must be 1-%d bytes", max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("contains a space, control or non-ASCII character")
		}
	}
	return nil
}

// ValidID reports whether s is an acceptable identifier that a client
// names on the long connection or at login: a client message id, a device
// name, a conversation id. It is ValidToken without '.', '*' and '>', the
// characters that separate and match NATS subject tokens, so no id ever
// reads as more than one token or as a wildcard wherever it travels.
func ValidID(s string, max int) error {
	if err := ValidToken(s, max); err != nil {
		return err
	}
	if i := strings.IndexAny(s, ".*>"); i >= 0 {
		return fmt.Errorf("contains %q; '.', '*' and '>' are not allowed", s[i])
	}
	return nil
}
