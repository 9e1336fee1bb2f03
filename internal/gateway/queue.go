package gateway

import (
	"time"

	"github.com/magpie-im/magpie/proto/wire"
)

// The outbound side of a session. Frames (already encoded for the
// connection) are appended to session.queue under session.mu. There is no
// permanently running writer: the first frame queued on an idle session
// starts a flush goroutine, which writes everything queued as one batch,
// looks again, and exits when the queue is empty. session.writing, set and
// cleared under session.mu, makes sure at most one flush goroutine exists
// and that a frame queued while one is exiting is never stranded: the
// flusher clears writing in the same critical section in which it sees the
// queue empty, and a producer that then finds writing false starts a new one.
//
// Closing: closeWith marks the session closing (no more frames accepted),
// optionally drops what is queued (slow consumers), appends a last frame (a
// Kick, or an Error) and makes sure a flusher runs. After the last batch the
// flusher shuts down the write side (TCP FIN, WebSocket close frame). The
// reader goroutine closes the connection itself when its read loop ends
// (see session.serve), so unread input never turns the close into a reset
// that could destroy the Kick in flight.

// send queues a frame; it never blocks. Overflow disconnects the session
// with CodeSlowConsumer. It reports whether the frame was queued.
func (s *session) send(frame []byte) bool {
	return s.enqueue(frame, false)
}

// enqueue queues frame; with needAuth it is dropped unless the session has
// been told it authenticated (deliveries go only to such sessions).
func (s *session) enqueue(frame []byte, needAuth bool) bool {
	s.mu.Lock()
	if s.closing || (needAuth && !s.authed) {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= s.g.cfg.SendQueue {
		s.mu.Unlock()
		s.g.stats.slowConsumers.Add(1)
		s.closeWith(wire.CodeSlowConsumer, s.g.kickFrame(s.enc, wire.CodeSlowConsumer, "send queue full"), true)
		return false
	}
	s.queue = append(s.queue, frame)
	start := s.startFlusherLocked()
	s.mu.Unlock()
	if start {
		go s.flush()
	}
	return true
}

// startFlusherLocked reports whether the caller must start a flush
// goroutine. s.mu is held. The goroutine is counted in the gateway's
// WaitGroup here, while the session's reader count (held from startSession
// to finish, parked or not) is too: closing is set before the reader
// finishes, and no flusher starts after that except from closeWith called
// by the reader itself.
func (s *session) startFlusherLocked() bool {
	if s.writing {
		return false
	}
	s.writing = true
	s.g.wg.Add(1)
	return true
}

// closeWith starts closing the session: nothing more is queued, final (if
// any) is written after what is queued (or instead of it with drop), then
// the write side is shut down. Only the first call has an effect; code is
// recorded for Stats and logs (0: the peer or the network went away). It
// reports whether this call started the close.
func (s *session) closeWith(code wire.Code, final []byte, drop bool) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	s.closing = true
	s.closeCode = code
	if drop {
		clear(s.queue)
		s.queue = s.queue[:0]
	}
	if final != nil {
		s.queue = append(s.queue, final)
	}
	// Bound the reader: the flusher has WriteTimeout for the last batch,
	// then the peer has WriteTimeout to go away.
	_ = s.t.setReadDeadline(time.Now().Add(2 * s.g.cfg.WriteTimeout))
	s.deadlineHit = false
	start := s.startFlusherLocked()
	wake := s.parked // a parked reader must run to finish the session
	s.parked = false
	s.mu.Unlock()
	if start {
		go s.flush()
	}
	if wake {
		go s.serve()
	}
	return true
}

// flush is the session's writer while anything is queued; see the top of
// this file.
func (s *session) flush() {
	defer s.g.wg.Done()
	var batch [][]byte
	for {
		s.mu.Lock()
		// Swap: the emptied previous batch becomes the next queue.
		batch, s.queue = s.queue, batch[:0]
		closing := s.closing
		if len(batch) == 0 && !closing {
			s.writing = false
			s.queue = nil // an idle session keeps no queue memory
			s.mu.Unlock()
			return
		}
		code := s.closeCode
		s.mu.Unlock()

		if len(batch) > 0 {
			err := s.t.writeFrames(batch, time.Now().Add(s.g.cfg.WriteTimeout))
			clear(batch)
			if err != nil {
				s.closeWith(0, nil, true)
				s.t.close() // the reader may be blocked: unblock it
				return      // writing stays true: no flusher starts again
			}
			s.g.stats.framesOut.Add(uint64(len(batch)))
			continue
		}
		// Closing and everything written.
		s.t.shutdownWrite(code, time.Now().Add(s.g.cfg.WriteTimeout))
		return
	}
}
