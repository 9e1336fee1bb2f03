package gateway

import (
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/magpie-im/magpie/proto/wire"
)

// Idle connections cost memory, not CPU, and most of it was the reader
// goroutine blocked in Read: its 2 KB+ stack, the goroutine itself, its
// read buffer and a runtime timer for the read deadline. So:
//
//   - A reader that has handled a frame and has no unconsumed input parks
//     the session (on Linux, for TCP and WebSocket connections without
//     TLS: see idler): it arms a one-shot readiness event in the gateway's
//     poller (park_linux.go) and its goroutine exits. When input arrives the
//     poller starts a new reader. Transports that cannot park (TLS, MQTT,
//     other systems) start a fresh goroutine per frame instead, which at
//     least keeps their stacks small.
//   - No connection has a timer. The read deadline (the auth timeout before
//     authentication, the heartbeat timeout after) and the token's expiry
//     are instants in the session (readBy, expiresAt); one sweeper per
//     gateway looks at every session a few times per timeout. When a read
//     deadline passes it sets the socket's read deadline to the past, so a
//     reader blocked in Read fails with a timeout (and one parked is woken
//     to see it): the session then kicks as it always did.
//
// The reader's count in Gateway.wg is taken in startSession and given back
// in finish: a parked session keeps it, so Shutdown waits for parked
// sessions too (Drain kicks them, and closeWith wakes a parked reader).

// idler is implemented by transports whose reader can park.
type idler interface {
	// idle reports whether every byte read has been consumed; if so the
	// transport has let go of its read buffer.
	idle() bool
	// rawConn is the socket to wait on, nil if the transport cannot park
	// (it may hold input the socket will not signal, like TLS records).
	rawConn() syscall.RawConn
}

var errPollerClosed = errors.New("gateway: poller closed")

// tcpRawConn is c's socket if c is a plain TCP connection.
func tcpRawConn(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// startIdleLoops starts the sweeper and the poller with the first session.
// g.mu is held and the gateway is not draining.
func (g *Gateway) startIdleLoops() {
	if g.sweeping {
		return
	}
	g.sweeping = true
	g.wg.Add(1)
	go g.sweep()
	p, err := newPoller()
	if err != nil {
		g.log.Debug("idle connections keep their reader goroutines", "err", err)
		return
	}
	g.poll = p
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := p.run(g.ready); err != nil {
			// Parked sessions are still woken by closeWith and the sweeper.
			g.log.Error("connection poller failed; idle connections time out", "err", err)
		}
	}()
}

// ready is the poller's report that session id has input.
func (g *Gateway) ready(id uint64) {
	if s := g.shards.conn(id); s != nil && s.unpark() {
		go s.serve()
	}
}

// sweepEvery is how often the sweeper looks: a tenth of the shortest
// timeout, between 10 ms and 1 s. Deadlines are therefore met within that
// much.
func (c Config) sweepEvery() time.Duration {
	return min(max(min(c.AuthTimeout, c.HeartbeatTimeout)/10, 10*time.Millisecond), time.Second)
}

// sweep checks every session's deadlines until the gateway drains (Drain
// closes every session, each with a socket deadline of its own).
func (g *Gateway) sweep() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.sweepEvery())
	defer t.Stop()
	for {
		select {
		case <-g.stopped:
			return
		case now := <-t.C:
			n := now.UnixNano()
			g.shards.each(func(s *session) { s.checkDeadlines(n) })
		}
	}
}

// pastDeadline is a read deadline that has passed.
var pastDeadline = time.Unix(1, 0)

// checkDeadlines runs on the sweeper: it kicks a session whose token
// expired and expires the socket read deadline of one whose readBy passed.
func (s *session) checkDeadlines(now int64) {
	if exp := s.expiresAt.Load(); exp > 0 && now >= exp {
		s.mu.Lock()
		closing := s.closing
		s.mu.Unlock()
		if !closing {
			s.kick(wire.CodeSessionExpired, "session expired, log in again")
		}
		return
	}
	if now < s.readBy.Load() {
		return
	}
	s.mu.Lock()
	if s.closing || s.deadlineHit || now < s.readBy.Load() {
		s.mu.Unlock()
		return
	}
	s.deadlineHit = true
	_ = s.t.setReadDeadline(pastDeadline)
	wake := s.parked
	s.parked = false
	s.mu.Unlock()
	if wake {
		go s.serve()
	}
}

// armReadDeadline starts the wait for the next frame: AuthTimeout before
// authentication, HeartbeatTimeout after. If the sweeper expired the socket
// deadline while the last frame was being handled, that is undone. It
// reports false once the session is closing, whose own deadline it must
// not touch.
func (s *session) armReadDeadline() bool {
	d := s.g.cfg.HeartbeatTimeout
	if k, ok := s.t.(interface{ heartbeatTimeout() time.Duration }); ok && k.heartbeatTimeout() > 0 {
		d = k.heartbeatTimeout() // MQTT: the client's keepalive
	}
	if s.ref == nil {
		d = s.g.cfg.AuthTimeout
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.readBy.Store(time.Now().Add(d).UnixNano())
	if s.deadlineHit {
		s.deadlineHit = false
		return s.t.setReadDeadline(time.Time{}) == nil
	}
	return true
}

// park ends the reader goroutine until the connection has input; true:
// parked (or another goroutine took over), the caller returns keeping its
// wg count for the next reader. Reader only.
func (s *session) park(t idler) bool {
	p := s.g.poll
	if p == nil {
		return false
	}
	rc := t.rawConn()
	if rc == nil {
		return false
	}
	first := !s.polled
	s.polled = true // before parked is published: the next reader reads it
	s.mu.Lock()
	if s.closing || s.deadlineHit {
		s.mu.Unlock()
		return false
	}
	s.parked = true
	s.mu.Unlock()
	if err := p.arm(rc, s.id, first); err != nil {
		// Take the session back, unless closeWith or the sweeper already
		// woke it (then their reader runs).
		return !s.unpark()
	}
	return true
}

// unpark claims a parked session; true: the caller starts its reader.
func (s *session) unpark() bool {
	s.mu.Lock()
	ok := s.parked
	s.parked = false
	s.mu.Unlock()
	return ok
}
