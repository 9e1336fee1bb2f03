package client

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// session is one authenticated long connection. It has a reader, a writer
// and a pinger goroutine. Whoever first sees the connection end (a read or
// write error, a kick, a missing pong, Client.Close) calls close, which
// closes the transport; close is idempotent.
type session struct {
	c    *Client
	t    transport
	li   *loginInfo // the login whose token authenticated this connection
	hb   time.Duration
	out  chan *magpiepb.Envelope
	done chan struct{}

	mu      sync.Mutex // guards the fields below; a leaf lock
	pending map[uint64]chan *magpiepb.Envelope
	err     error          // why the session ended
	kick    *magpiepb.Kick // the kick that ended it, if any
	closed  bool
}

func newSession(c *Client, t transport, li *loginInfo, hb time.Duration) *session {
	return &session{
		c: c, t: t, li: li, hb: hb,
		out:     make(chan *magpiepb.Envelope, 64),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan *magpiepb.Envelope),
	}
}

// authenticate sends the first frame and reads its answer, before any
// session goroutine runs.
func authenticate(ctx context.Context, t transport, token string) (*magpiepb.AuthOK, error) {
	deadline := time.Now().Add(10 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	t.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { t.Close() })
	defer stop()
	if err := t.Write(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: token}}}); err != nil {
		return nil, err
	}
	env, err := t.Read()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	t.SetReadDeadline(time.Time{})
	switch b := env.Body.(type) {
	case *magpiepb.Envelope_AuthOk:
		return b.AuthOk, nil
	case *magpiepb.Envelope_Error:
		return nil, errorFromWire(b.Error)
	case *magpiepb.Envelope_Kick:
		return nil, &Error{Code: wire.Code(b.Kick.GetCode()), Message: b.Kick.GetReason()}
	}
	return nil, fmt.Errorf("magpie: unexpected answer to auth: %T", env.Body)
}

// start runs the session goroutines. Called with c.mu held.
func (s *session) startLocked() {
	s.c.goLocked(s.readLoop)
	s.c.goLocked(s.writeLoop)
	s.c.goLocked(s.pingLoop)
}

func (s *session) close(err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed, s.err, s.pending = true, err, nil
	s.mu.Unlock()
	close(s.done)
	s.t.Close()
}

func (s *session) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// result returns why the session ended and the kick, if it was kicked.
func (s *session) result() (*magpiepb.Kick, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kick, s.err
}

// request sends env with a fresh id and waits for the answer with that id.
// A dead connection gives an error wrapping errConnLost. env must not be
// used by the caller afterwards.
func (s *session) request(ctx context.Context, env *magpiepb.Envelope) (*magpiepb.Envelope, error) {
	id := s.c.nextID.Add(1)
	ch := make(chan *magpiepb.Envelope, 1)
	s.mu.Lock()
	if s.closed {
		err := s.err
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", errConnLost, err)
	}
	s.pending[id] = ch
	s.mu.Unlock()
	env.Id = id
	forget := func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}
	select {
	case s.out <- env:
	case <-s.done:
		return nil, s.lostErr()
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
	select {
	case r := <-ch:
		return r, nil
	case <-s.done:
		return nil, s.lostErr()
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

func (s *session) lostErr() error {
	_, err := s.result()
	return fmt.Errorf("%w: %v", errConnLost, err)
}

func (s *session) readLoop() {
	for {
		env, err := s.t.Read()
		if err != nil {
			s.close(err)
			return
		}
		if env.Id != 0 {
			s.mu.Lock()
			ch := s.pending[env.Id]
			delete(s.pending, env.Id)
			s.mu.Unlock()
			if ch != nil {
				ch <- env // buffered, and each id is answered once
			}
			continue
		}
		switch b := env.Body.(type) {
		case *magpiepb.Envelope_Message:
			s.c.ingest([]*magpiepb.Message{b.Message}, false)
		case *magpiepb.Envelope_Receipt:
			s.c.receiptPushed(b.Receipt)
		case *magpiepb.Envelope_Conversation:
			s.c.conversationPushed(b.Conversation)
		case *magpiepb.Envelope_Typing:
			s.c.typingPushed(b.Typing)
		case *magpiepb.Envelope_Notice:
			s.c.noticePushed(b.Notice)
		case *magpiepb.Envelope_Kick:
			s.mu.Lock()
			s.kick = b.Kick
			s.mu.Unlock()
			s.close(&Error{Code: wire.Code(b.Kick.GetCode()), Message: b.Kick.GetReason()})
			return
		case *magpiepb.Envelope_Error:
			// An error without a request id is about the connection itself.
			s.close(errorFromWire(b.Error))
			return
		}
	}
}

// maxWriteBatch bounds how many queued frames the writer takes into one
// write.
const maxWriteBatch = 64

// writeLoop writes what is queued, everything queued at once: requests
// that pile up while a write is in progress (pipelined sends, several
// callers) go out together in the next.
func (s *session) writeLoop() {
	batch := make([]*magpiepb.Envelope, 0, maxWriteBatch)
	for {
		select {
		case env := <-s.out:
			batch = append(batch, env)
		case <-s.done:
			return
		}
		if len(s.out) == 0 {
			// Callers woken by the same read (a burst of acks) are about
			// to queue their next sends: let them, and write them all at
			// once. A write costs far more than this trip through the
			// scheduler (on loopback the sender's write also runs the
			// receiver's TCP input).
			runtime.Gosched()
		}
	drain:
		for len(batch) < maxWriteBatch {
			select {
			case env := <-s.out:
				batch = append(batch, env)
			default:
				break drain
			}
		}
		err := s.t.Write(batch...)
		clear(batch) // let the envelopes go
		batch = batch[:0]
		if err != nil {
			s.close(err)
			return
		}
	}
}

// pingLoop pings every heartbeat interval; a pong that does not come back
// within pongTimeout means the connection is dead even if TCP has not
// noticed yet. Every resyncEvery-th pong starts a periodic resync
// (Options.ResyncEvery).
func (s *session) pingLoop() {
	pongTimeout := min(max(s.hb, time.Second), 10*time.Second)
	resyncEvery := 0 // pongs; 0: off
	if r := s.c.resync; r > 0 {
		resyncEvery = max(1, int((r+s.hb-1)/s.hb))
	}
	pongs := 0
	tick := time.NewTicker(s.hb)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.done:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), pongTimeout)
		env := &magpiepb.Envelope{Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: time.Now().UnixMilli()}}}
		reply, err := s.request(ctx, env)
		cancel()
		if err == context.DeadlineExceeded {
			s.close(errHeartbeat)
			return
		}
		if err == nil && reply.GetPong() != nil && resyncEvery > 0 {
			if pongs++; pongs%resyncEvery == 0 {
				s.c.startResync(s)
			}
		}
	}
}
