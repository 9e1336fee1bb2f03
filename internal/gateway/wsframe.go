package gateway

import (
	"encoding/binary"
	"errors"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/magpie-im/magpie/proto/wire"
)

// WebSocket framing (RFC 6455 §5), the gateway's own after the handshake.
// Client frames must be masked, carry no RSV bits (no extension is
// negotiated) and a known opcode; control frames are unfragmented and at
// most 125 bytes; a continuation needs a message to continue and a new
// message must not interrupt one. Anything else is a protocol violation:
// kick{19 protocol_error}, then close 1002. A message larger than
// wire.MaxFrame fails as soon as a frame header announces it (kick{7},
// close 1009). Pings are answered with a pong, pongs are ignored, a close
// frame from the client ends the session (answered with close 1000).

const (
	wsCont   = 0x0
	wsText   = 0x1
	wsBinary = 0x2
	wsClose  = 0x8
	wsPing   = 0x9
	wsPong   = 0xa

	wsCloseProtocol = 1002 // RFC 6455 §7.4.1

	// wsRawFrame marks a queued frame that is a complete WebSocket frame
	// (a pong) rather than a message payload. No payload starts with it:
	// 0xff is an invalid protobuf tag (wire type 7) and protojson output
	// starts with '{'.
	wsRawFrame byte = 0xff
)

var (
	errWSProtocol  = errors.New("gateway: websocket protocol violation")
	errWSPeerClose = errors.New("gateway: websocket closed by the client")
)

// wsTransport carries one Envelope per WebSocket message.
type wsTransport struct {
	conn net.Conn
	op   byte  // wsBinary (protobuf) or wsText (JSON)
	in   inbuf // reader only
	s    *session
	// violated: the reader saw a protocol violation; the close frame says
	// 1002 (set by the reader before the kick is queued, read by the
	// flusher).
	violated atomic.Bool
	// writeDeadline is the write deadline last set (flush goroutine only).
	writeDeadline time.Time
}

var _ transport = (*wsTransport)(nil)

func (t *wsTransport) attach(s *session)                 { t.s = s }
func (t *wsTransport) setReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }
func (t *wsTransport) close()                            { t.conn.Close() }
func (t *wsTransport) idle() bool                        { return t.in.idle() }
func (t *wsTransport) rawConn() syscall.RawConn          { return tcpRawConn(t.conn) }

func (t *wsTransport) discard() {
	t.in.release()
	discardInput(t.conn)
}

// readFrame returns the next data message's payload, valid until the next
// call or idle. Fragments are joined (in a buffer of their own); control
// frames between them are handled here.
func (t *wsTransport) readFrame() ([]byte, error) {
	var msg []byte // the fragments so far
	started := false
	for {
		fin, op, payload, err := t.nextFrame(len(msg))
		if err != nil {
			if errors.Is(err, errWSProtocol) {
				t.violated.Store(true)
			}
			if started {
				err = unexpectedEOF(err)
			}
			return nil, err
		}
		switch op {
		case wsPing:
			pong := appendWSHeader([]byte{wsRawFrame}, wsPong, len(payload))
			t.s.send(append(pong, payload...))
			continue
		case wsPong:
			continue
		case wsClose:
			return nil, errWSPeerClose
		case wsCont:
			if !started {
				t.violated.Store(true)
				return nil, errWSProtocol
			}
		default: // text or binary
			if started {
				t.violated.Store(true)
				return nil, errWSProtocol
			}
			if op != t.op {
				return nil, errWrongType
			}
		}
		if fin && !started {
			return payload, nil
		}
		msg = append(msg, payload...)
		started = true
		if fin {
			return msg, nil
		}
	}
}

// nextFrame reads one frame and unmasks its payload; sofar is the size of
// the message it may continue, for the frame limit.
func (t *wsTransport) nextFrame(sofar int) (fin bool, op byte, payload []byte, err error) {
	h, err := t.in.peek(t.conn, 2)
	if err != nil {
		return false, 0, nil, err
	}
	b0, b1 := h[0], h[1]
	fin, op = b0&0x80 != 0, b0&0x0f
	hl := 2
	switch b1 & 0x7f {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	// The length first: a header announcing too much fails before its
	// mask key (or anything after it) arrives.
	if h, err = t.in.peek(t.conn, hl); err != nil {
		return false, 0, nil, unexpectedEOF(err)
	}
	n := uint64(b1 & 0x7f)
	switch hl {
	case 4:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 10:
		n = binary.BigEndian.Uint64(h[2:])
	}
	switch {
	case b0&0x70 != 0, b1&0x80 == 0: // RSV bits; an unmasked client frame
		return false, 0, nil, errWSProtocol
	case op >= 0x8: // control
		if op > wsPong || !fin || n > 125 {
			return false, 0, nil, errWSProtocol
		}
	case op > wsBinary:
		return false, 0, nil, errWSProtocol
	case n > uint64(wire.MaxFrame) || uint64(sofar)+n > uint64(wire.MaxFrame):
		return false, 0, nil, errTooLarge
	}
	if h, err = t.in.peek(t.conn, hl+4); err != nil {
		return false, 0, nil, unexpectedEOF(err)
	}
	var key [4]byte
	copy(key[:], h[hl:])
	t.in.consume(hl + 4)
	if payload, err = t.in.take(t.conn, int(n)); err != nil {
		return false, 0, nil, unexpectedEOF(err)
	}
	for i := range payload {
		payload[i] ^= key[i&3]
	}
	return fin, op, payload, nil
}

// appendWSHeader appends an unmasked, final frame header (server frames
// are not masked).
func appendWSHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n < 1<<16:
		return binary.BigEndian.AppendUint16(append(b, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
}

// writeFrames writes each frame as one message (or as is, if it is a
// wsRawFrame), batched in one pooled buffer like TCP.
func (t *wsTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	if err := moveWriteDeadline(t.conn, &t.writeDeadline, deadline); err != nil {
		return err
	}
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	var err error
	for _, f := range frames {
		if len(buf) > 0 && len(buf)+10+len(f) > writeChunk {
			if _, err = t.conn.Write(buf); err != nil {
				break
			}
			buf = buf[:0]
		}
		if len(f) > 0 && f[0] == wsRawFrame {
			buf = append(buf, f[1:]...)
		} else {
			buf = append(appendWSHeader(buf, t.op, len(f)), f...)
		}
	}
	if err == nil && len(buf) > 0 {
		_, err = t.conn.Write(buf)
	}
	if cap(buf) <= 2*writeChunk {
		*bp = buf[:0]
		writeBufs.Put(bp)
	}
	return err
}

// shutdownWrite sends the close frame: 1000 for a plain close, 1002 after
// a framing violation, 1009 for a frame too large, 1001 when the gateway
// goes away, 4000+code otherwise; then FIN.
func (t *wsTransport) shutdownWrite(code wire.Code, deadline time.Time) {
	ws := 1000
	switch {
	case code == 0:
	case code == wire.CodeProtocolError && t.violated.Load():
		ws = wsCloseProtocol
	case code == wire.CodeTooLarge:
		ws = 1009
	case code == wire.CodeDraining, code == wire.CodeServerShutdown:
		ws = 1001
	default:
		ws = 4000 + int(code)
	}
	if moveWriteDeadline(t.conn, &t.writeDeadline, deadline) == nil {
		t.conn.Write(binary.BigEndian.AppendUint16(appendWSHeader(nil, wsClose, 2), uint16(ws)))
	}
	if cw, ok := t.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
