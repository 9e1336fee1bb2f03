package gateway

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/magpie-im/magpie/proto/wire"
)

const (
	tcpReadBuffer = 256      // bytes of bufio per MQTT connection: small idle footprint
	writeChunk    = 64 << 10 // a batch is written in chunks of about this size
	lingerLimit   = 1 << 20  // bytes discarded before closing
)

// writeBufs holds batch buffers, shared by all connections' flushers so an
// idle connection keeps none.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// ServeTCP accepts connections on ln until ln fails or the gateway drains;
// it then returns ErrClosed (Drain or Shutdown) or the accept error. ln is
// closed on return.
func (g *Gateway) ServeTCP(ln net.Listener) error {
	return g.acceptLoop(ln, func(c net.Conn) bool {
		return g.startSession(&tcpTransport{conn: c}, encProto, TCP)
	})
}

// acceptLoop accepts on ln and starts each connection with start until ln
// fails or the gateway drains (then ErrClosed); ln is closed on return.
// Accept errors that pass (out of file descriptors) are retried with a
// backoff, like net/http.
func (g *Gateway) acceptLoop(ln net.Listener, start func(net.Conn) bool) error {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		ln.Close()
		return ErrClosed
	}
	g.listeners[ln] = struct{}{}
	g.wg.Add(1)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, ln)
		g.mu.Unlock()
		ln.Close()
		g.wg.Done()
	}()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-g.stopped:
				return ErrClosed
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				g.log.Warn("accept failed; retrying", "err", err, "delay", backoff)
				t := time.NewTimer(backoff)
				select {
				case <-t.C:
				case <-g.stopped:
					t.Stop()
					return ErrClosed
				}
				continue
			}
			return err
		}
		backoff = 0
		// The accept rate: this one waits its turn; the ones behind it
		// wait in the listen backlog.
		if !g.waitAccept(0) {
			c.Close()
			return ErrClosed
		}
		if !start(c) {
			c.Close()
		}
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// tcpTransport frames Envelopes with a 4-byte length (package wire).
type tcpTransport struct {
	conn net.Conn
	in   inbuf // holds a read buffer only while input is pending
	// writeDeadline is the write deadline last set (flush goroutine only).
	writeDeadline time.Time
}

// A write deadline already set is kept unless it is more than 1/8 of the
// timeout asked for earlier than the new one: moving it updates a runtime
// timer, which every write of a group fan-out would pay otherwise. The
// effective write timeout is between 7/8 of WriteTimeout and all of it.
const deadlineSlackDiv = 8

// moveWriteDeadline sets c's write deadline to deadline unless *cur (the
// one last set) is close enough; see deadlineSlackDiv.
func moveWriteDeadline(c net.Conn, cur *time.Time, deadline time.Time) error {
	if d := deadline.Sub(*cur); d < 0 || d > time.Until(deadline)/deadlineSlackDiv {
		if err := c.SetWriteDeadline(deadline); err != nil {
			return err
		}
		*cur = deadline
	}
	return nil
}

var _ transport = (*tcpTransport)(nil)

func (t *tcpTransport) readFrame() ([]byte, error)        { return t.in.readFrame(t.conn, wire.MaxFrame) }
func (t *tcpTransport) idle() bool                        { return t.in.idle() }
func (t *tcpTransport) rawConn() syscall.RawConn          { return tcpRawConn(t.conn) }
func (t *tcpTransport) setReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }
func (t *tcpTransport) close()                            { t.conn.Close() }

// writeFrames appends the frames into one pooled buffer and writes it
// once (in chunks of about writeChunk for very large batches).
func (t *tcpTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	if err := moveWriteDeadline(t.conn, &t.writeDeadline, deadline); err != nil {
		return err
	}
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	var err error
	for _, f := range frames {
		if len(buf) > 0 && len(buf)+wire.HeaderSize+len(f) > writeChunk {
			if _, err = t.conn.Write(buf); err != nil {
				break
			}
			buf = buf[:0]
		}
		buf = wire.AppendFrame(buf, f)
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

// shutdownWrite sends FIN after the last frame; the reader closes.
func (t *tcpTransport) shutdownWrite(_ wire.Code, _ time.Time) {
	if cw, ok := t.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

func (t *tcpTransport) discard() {
	t.in.release()
	discardInput(t.conn)
}

// discardInput reads and drops up to lingerLimit bytes, until EOF, an error
// or the read deadline set by closeWith.
func discardInput(c net.Conn) {
	var buf [512]byte
	for n := 0; n < lingerLimit; {
		m, err := c.Read(buf[:])
		n += m
		if err != nil {
			return
		}
	}
}
