package gateway

import (
	"bufio"
	"encoding/binary"
	"net"
	"net/http"
)

// gorilla/websocket learns a frame's length from its header but, without
// SetReadLimit, waits for the whole payload before the gateway sees a byte
// past the limit: a header announcing 2^63-1 bytes held the connection
// until the heartbeat timeout. SetReadLimit would fail at the header, but
// gorilla then writes its own close frame, before the gateway's kick
// (docs/protocol.md promises the kick first). So the connection gorilla
// reads from is a frameLimitConn: it follows the frame headers in the
// client's byte stream (the payload it only counts) and fails the read at
// once when a data frame, or the message it continues, would exceed max.
// The session then kicks with too_large and closes with 1009.

// limitHijacker hands gorilla's Upgrade a frameLimitConn in place of the
// hijacked connection.
type limitHijacker struct {
	http.ResponseWriter
	max  int64
	raw  net.Conn // the hijacked connection, for the transport's own use
	conn *frameLimitConn
}

func (h *limitHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.raw, h.conn = c, &frameLimitConn{Conn: c, max: h.max}
	return h.conn, brw, nil
}

// frameLimitConn is read by one goroutine at a time (gorilla's reader).
type frameLimitConn struct {
	net.Conn
	max int64
	err error // sticky: errTooLarge once a header announced too much

	hdr  [14]byte // the header being read: 2 bytes, length 0/2/8, mask 0/4
	hn   int      // bytes of hdr read
	need int      // its full size, once its second byte is known
	left uint64   // payload bytes of the current frame still to come
	msg  uint64   // payload bytes of the current data message so far
}

func (c *frameLimitConn) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.Conn.Read(p)
	start := 0 // where the current header began in p
	for i := 0; i < n; {
		if c.left > 0 {
			k := min(uint64(n-i), c.left)
			i += int(k)
			c.left -= k
			continue
		}
		if c.hn == 0 {
			start = i
		}
		c.hdr[c.hn] = p[i]
		c.hn++
		i++
		if c.hn == 2 {
			c.need = 2
			switch c.hdr[1] & 0x7f {
			case 126:
				c.need += 2
			case 127:
				c.need += 8
			}
			if c.hdr[1]&0x80 != 0 {
				c.need += 4
			}
		}
		if c.hn < 2 || c.hn < c.need {
			continue
		}
		c.hn = 0
		length := uint64(c.hdr[1] & 0x7f)
		switch length {
		case 126:
			length = uint64(binary.BigEndian.Uint16(c.hdr[2:4]))
		case 127:
			length = binary.BigEndian.Uint64(c.hdr[2:10])
		}
		if op := c.hdr[0] & 0x0f; op < 8 { // a data frame: text, binary or continuation
			if op != 0 {
				c.msg = 0
			}
			if length > uint64(c.max) || c.msg+length > uint64(c.max) {
				// Hand gorilla what came before this header; fail the next read.
				c.err = errTooLarge
				if start > 0 {
					return start, nil
				}
				return 0, c.err
			}
			c.msg += length
		}
		c.left = length
	}
	return n, err
}
