package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/magpie-im/magpie/proto/wire"
)

// inBufSize is the read buffer a connection borrows while bytes are
// pending. Frames up to inBufSize-wire.HeaderSize bytes are returned from
// it; larger ones get a buffer of their own, dropped after use.
const inBufSize = 4096

// inBufs is shared by every connection of every gateway: an idle
// connection holds no read buffer at all.
var inBufs = sync.Pool{New: func() any { b := make([]byte, inBufSize); return &b }}

// inbuf reads length-prefixed frames (package wire's framing) from a
// connection. It borrows a pooled buffer when it starts reading and gives
// it back (release) once every byte read has been consumed, so a
// connection waiting for its next frame keeps nothing but this struct.
// One goroutine at a time (the session's reader) uses it.
type inbuf struct {
	b    *[]byte // borrowed from inBufs; nil while released
	r, w int     // (*b)[r:w] is read and not yet consumed
}

// readFrame returns the next frame's payload, valid until the next call
// or release. A frame larger than max fails with wire.ErrFrameTooLarge, an
// empty one with wire.ErrEmptyFrame; EOF inside a frame is
// io.ErrUnexpectedEOF.
func (in *inbuf) readFrame(c net.Conn, max int) ([]byte, error) {
	hdr, err := in.peek(c, wire.HeaderSize)
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n == 0 {
		return nil, wire.ErrEmptyFrame
	}
	if n > max {
		return nil, fmt.Errorf("%w: %d > %d bytes", wire.ErrFrameTooLarge, n, max)
	}
	in.consume(wire.HeaderSize)
	f, err := in.take(c, n)
	return f, unexpectedEOF(err)
}

// peek returns the next n (at most inBufSize) bytes without consuming
// them, valid until the next call.
func (in *inbuf) peek(c net.Conn, n int) ([]byte, error) {
	if err := in.fill(c, n); err != nil {
		return nil, err
	}
	return (*in.b)[in.r : in.r+n], nil
}

// consume drops n bytes returned by peek.
func (in *inbuf) consume(n int) { in.r += n }

// take consumes the next n bytes: from the buffer if they fit, else in a
// slice of their own (what the buffer holds, then the rest read directly).
func (in *inbuf) take(c net.Conn, n int) ([]byte, error) {
	if n <= inBufSize {
		if err := in.fill(c, n); err != nil {
			return nil, err
		}
		out := (*in.b)[in.r : in.r+n]
		in.r += n
		return out, nil
	}
	out := make([]byte, n)
	got := 0
	if in.b != nil {
		got = copy(out, (*in.b)[in.r:in.w])
		in.r += got
	}
	if _, err := io.ReadFull(c, out[got:]); err != nil {
		return nil, err
	}
	return out, nil
}

// fill makes at least need bytes available at (*in.b)[in.r:]; need is at
// most inBufSize. EOF before the first byte is io.EOF.
func (in *inbuf) fill(c net.Conn, need int) error {
	if in.b == nil {
		in.b = inBufs.Get().(*[]byte)
		in.r, in.w = 0, 0
	}
	buf := *in.b
	if in.r+need > len(buf) { // move the pending bytes to the front
		in.w = copy(buf, buf[in.r:in.w])
		in.r = 0
	}
	for in.w-in.r < need {
		m, err := c.Read(buf[in.w:])
		in.w += m
		if in.w-in.r >= need {
			return nil // an error comes back on the next read
		}
		if err != nil {
			if err == io.EOF && in.w > in.r {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// idle reports whether every byte read has been consumed; if so it gives
// the buffer back.
func (in *inbuf) idle() bool {
	if in.b != nil && in.r < in.w {
		return false
	}
	in.release()
	return true
}

// release gives the buffer back, dropping anything unconsumed.
func (in *inbuf) release() {
	if in.b != nil {
		inBufs.Put(in.b)
		in.b, in.r, in.w = nil, 0, 0
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
