package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/magpie-im/magpie/proto/wire"
)

// TestInbufFrames reads frames around the buffer size, written at once and
// a byte at a time, and checks the buffer is given back between frames.
func TestInbufFrames(t *testing.T) {
	sizes := []int{1, 100, inBufSize - wire.HeaderSize - 1, inBufSize - wire.HeaderSize, inBufSize - wire.HeaderSize + 1, wire.MaxFrame}
	var stream []byte
	for i, n := range sizes {
		stream = wire.AppendFrame(stream, bytes.Repeat([]byte{byte('a' + i)}, n))
	}
	for _, chunk := range []int{len(stream), 7, 1} {
		server, peer := net.Pipe()
		go func() {
			for b := stream; len(b) > 0; {
				k := min(chunk, len(b))
				peer.Write(b[:k])
				b = b[k:]
			}
			peer.Close()
		}()
		var in inbuf
		for i, n := range sizes {
			f, err := in.readFrame(server, wire.MaxFrame)
			if err != nil {
				t.Fatalf("chunk %d: frame %d: %v", chunk, i, err)
			}
			if !bytes.Equal(f, bytes.Repeat([]byte{byte('a' + i)}, n)) {
				t.Fatalf("chunk %d: frame %d: got %d bytes, want %d of %q", chunk, i, len(f), n, rune('a'+i))
			}
			if in.idle() != (in.b == nil) {
				t.Fatalf("chunk %d: idle() disagrees with the buffer held", chunk)
			}
		}
		if _, err := in.readFrame(server, wire.MaxFrame); err != io.EOF {
			t.Fatalf("chunk %d: after the last frame: %v, want EOF", chunk, err)
		}
		if !in.idle() || in.b != nil {
			t.Fatalf("chunk %d: the buffer is kept after EOF", chunk)
		}
	}
}

func TestInbufErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		max  int
		want error
	}{
		{"eof in header", []byte{0, 0}, wire.MaxFrame, io.ErrUnexpectedEOF},
		{"eof in small payload", []byte{0, 0, 0, 5, 1, 2}, wire.MaxFrame, io.ErrUnexpectedEOF},
		{"eof in large payload", append([]byte{0, 0, 0x20, 0}, make([]byte, 100)...), wire.MaxFrame, io.ErrUnexpectedEOF},
		{"empty frame", []byte{0, 0, 0, 0}, wire.MaxFrame, wire.ErrEmptyFrame},
		{"over max", []byte{0, 0, 0, 11}, 10, wire.ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			server, peer := net.Pipe()
			go func() { peer.Write(tt.data); peer.Close() }()
			var in inbuf
			if _, err := in.readFrame(server, tt.max); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}
