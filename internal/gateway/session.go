package gateway

import (
	"context"
	"errors"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/adapter"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// transport is what the TCP and WebSocket adapters give a session.
type transport interface {
	// readFrame returns the next frame's payload, valid until the next
	// call. Only the session's reader goroutine calls it.
	readFrame() ([]byte, error)
	// setReadDeadline may be called from any goroutine.
	setReadDeadline(t time.Time) error
	// writeFrames writes frames in order and flushes; only the session's
	// flush goroutine calls it.
	writeFrames(frames [][]byte, deadline time.Time) error
	// shutdownWrite ends the write side after the last frame (TCP: FIN;
	// WebSocket: a close frame carrying code). Flush goroutine only.
	shutdownWrite(code wire.Code, deadline time.Time)
	// discard reads and drops input until an error, so closing with unread
	// input does not reset the connection. Reader goroutine only.
	discard()
	// close closes the connection. Idempotent; any goroutine.
	close()
}

// session is one client connection. The reader goroutine (serve) owns the
// fields marked "reader only"; mu guards the outbound state (queue.go).
type session struct {
	g    *Gateway
	t    transport
	id   uint64
	enc  encoding
	kind Kind

	// Reader only.
	ref       *clusterpb.ConnRef // set once authenticated
	connected bool               // presence.Connected was called
	polled    bool               // the socket is (probably) in the poller's set
	tokens    float64
	last      int64 // unix nanoseconds of the last refill

	inflight  atomic.Int32 // requests forwarded and not yet answered
	readBy    atomic.Int64 // unix nanoseconds: the next frame is due (park.go)
	expiresAt atomic.Int64 // unix nanoseconds: the token expires (0: never)

	mu        sync.Mutex // a leaf: nothing else is locked or called while held
	queue     [][]byte
	writing   bool // a flush goroutine is running
	authed    bool // AuthOK is queued: deliveries may follow
	closing   bool
	closeCode wire.Code
	early     *earlyKick // a close that came before authed was set; see Deliver
	parked    bool       // no reader goroutine: the poller, closeWith or the sweeper starts one
	// deadlineHit: the sweeper set the socket's read deadline to the past.
	deadlineHit bool
}

// earlyKick is a close requested by logic before the auth finished.
type earlyKick struct {
	code  wire.Code
	frame []byte
}

// serve is the session's reader goroutine (one at a time: it parks or
// hands over to a new goroutine after each frame, see below and park.go).
// When its loop ends it closes the connection (after the flusher wrote the
// last frames and shut down the write side, or after the close budget set
// by closeWith), then unregisters the session and reports Disconnected.
// The reader's count in g.wg passes from one goroutine to the next.
func (s *session) serve() {
	for {
		frame, err := s.t.readFrame()
		if err != nil {
			s.readFailed(err)
			break
		}
		if !s.handleCounted(frame) || !s.armReadDeadline() {
			break
		}
		if t, ok := s.t.(idler); ok {
			if !t.idle() {
				continue // the next frame is (partly) read already
			}
			if s.park(t) {
				return
			}
		}
		// Wait for the next frame on a fresh goroutine. Handling a frame
		// (protobuf, Logic, Presence) grows the stack to 4-8 KB, and the
		// runtime shrinks a stack only while less than a quarter of it is
		// used, which a goroutine blocked in Read is not; a new goroutine
		// starts at 2 KB (exited goroutines give grown stacks back). This
		// costs a goroutine start per frame and saves ~2 KB per idle
		// connection.
		go s.serve()
		return
	}
	s.closeWith(0, nil, false) // no-op unless the loop ended on its own
	s.t.discard()
	s.t.close()
	s.finish()
	s.g.wg.Done()
}

// handleCounted counts and handles one frame; false ends the session.
func (s *session) handleCounted(frame []byte) bool {
	s.g.stats.framesIn.Add(1)
	return s.handle(frame)
}

// readFailed turns a read error into the client-visible code: the one
// place where transport errors become codes.
func (s *session) readFailed(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, wire.ErrFrameTooLarge), errors.Is(err, errTooLarge):
		s.kick(wire.CodeTooLarge, "frame exceeds limit")
	case errors.Is(err, wire.ErrEmptyFrame), errors.Is(err, errUndecodable), errors.Is(err, errWrongType),
		errors.Is(err, errWSProtocol):
		s.kick(wire.CodeProtocolError, "undecodable frame")
	case errors.As(err, &ne) && ne.Timeout():
		if s.ref == nil {
			s.kick(wire.CodeAuthTimeout, "no auth within the deadline")
		} else {
			s.kick(wire.CodeHeartbeatTimeout, "nothing received within the heartbeat deadline")
		}
	default: // EOF, reset, closed by us
		s.closeWith(0, nil, false)
	}
}

func (s *session) kick(code wire.Code, reason string) {
	s.closeWith(code, s.g.kickFrame(s.enc, code, reason), false)
}

func (s *session) reply(env *magpiepb.Envelope) { s.send(encodeEnvelope(s.enc, env)) }

// handle processes one frame; false ends the read loop.
func (s *session) handle(frame []byte) bool {
	env, err := decodeEnvelope(s.enc, frame)
	if err != nil {
		var bad *badFrame
		if errors.As(err, &bad) {
			return s.badRequest(bad)
		}
		s.kick(wire.CodeProtocolError, "undecodable frame")
		return false
	}
	// How each command is treated comes from the adapter's command table:
	// auth and ping are answered here, everything else is forwarded.
	cmd := adapter.Lookup(env)
	if s.ref == nil {
		if cmd != nil && !cmd.Auth {
			return s.authenticate(env.Id, env.GetAuth().GetToken())
		}
		s.closeWith(wire.CodeNotAuthenticated,
			encodeEnvelope(s.enc, errorEnvelope(env.Id, wire.CodeNotAuthenticated, "authenticate first", 0)), false)
		return false
	}
	if ms, ok := s.allow(time.Now().UnixNano()); !ok {
		s.g.stats.rateLimited.Add(1)
		s.reply(errorEnvelope(env.Id, wire.CodeRateLimited, "too many requests", ms))
		return true
	}
	switch {
	case cmd == nil:
		s.reply(errorEnvelope(env.Id, wire.CodeUnknownCommand, "unknown command", 0))
		return true
	case !cmd.Auth:
		s.reply(errorEnvelope(env.Id, wire.CodeAlreadyAuthed, "already authenticated", 0))
		return true
	case cmd.ByGateway: // ping
		s.reply(&magpiepb.Envelope{Id: env.Id, Body: &magpiepb.Envelope_Pong{Pong: &magpiepb.Pong{Time: env.GetPing().GetTime()}}})
		return true
	}
	if s.inflight.Add(1) > int32(s.g.cfg.MaxInFlight) {
		s.inflight.Add(-1)
		s.g.stats.rateLimited.Add(1)
		s.reply(errorEnvelope(env.Id, wire.CodeRateLimited, "too many requests in flight", inFlightRetryMS))
		return true
	}
	id := env.Id
	done := func(reply []byte, err error) {
		s.inflight.Add(-1)
		s.forwarded(id, reply, err)
	}
	if l := s.g.local; l != nil {
		l.ForwardEnvelope(s.ref, env, done)
		return true
	}
	var raw []byte
	if s.enc == encJSON {
		raw, err = proto.Marshal(env)
		if err != nil { // a decoded envelope always encodes; be safe anyway
			s.inflight.Add(-1)
			s.reply(errorEnvelope(env.Id, wire.CodeBadRequest, "cannot encode request", 0))
			return true
		}
	} else {
		raw = append([]byte(nil), frame...) // frame is reused by the reader
	}
	s.g.logic.Forward(&clusterpb.Request{Conn: s.ref, Envelope: raw}, done)
	return true
}

// badRequest answers a well-formed frame carrying a bad request with
// error{2} for its id; false ends the read loop. Before authentication only
// a valid auth is accepted, so the connection then closes after the answer,
// as it does for any other request before auth; after it, the connection
// stays, and the frame counts against the rate limit like any request.
func (s *session) badRequest(bad *badFrame) bool {
	e := errorEnvelope(bad.id, wire.CodeBadRequest, bad.msg, 0)
	if s.ref == nil {
		s.closeWith(wire.CodeBadRequest, encodeEnvelope(s.enc, e), false)
		return false
	}
	if ms, ok := s.allow(time.Now().UnixNano()); !ok {
		s.g.stats.rateLimited.Add(1)
		s.reply(errorEnvelope(bad.id, wire.CodeRateLimited, "too many requests", ms))
		return true
	}
	s.reply(e)
	return true
}

// inFlightRetryMS is the retry hint when MaxInFlight requests are pending.
const inFlightRetryMS = 100

// forwarded writes logic's answer. It runs on a goroutine of Logic's (or
// on the reader's, when Logic answers at once).
func (s *session) forwarded(id uint64, reply []byte, err error) {
	if err == nil && s.enc == encJSON {
		reply, err = protoToJSON(reply)
		if err != nil {
			s.g.log.Warn("undecodable reply from logic", "conn", s.id, "err", err)
			s.reply(errorEnvelope(id, wire.CodeInternal, "internal error", 0))
			return
		}
	}
	if err != nil {
		s.reply(errorEnvelope(id, wire.CodeUnavailable, "service unavailable", 0))
		return
	}
	s.send(reply)
}

// allow takes one token from the connection's bucket. Refused, it returns
// the milliseconds until a token is available.
func (s *session) allow(now int64) (uint32, bool) {
	rate, burst := s.g.cfg.RateLimit, float64(s.g.cfg.RateBurst)
	s.tokens = math.Min(burst, s.tokens+float64(now-s.last)/1e9*rate)
	s.last = now
	if s.tokens >= 1 {
		s.tokens--
		return 0, true
	}
	ms := math.Ceil((1 - s.tokens) / rate * 1000)
	return uint32(max(1, ms)), false
}

// authenticate handles the first frame; false ends the read loop.
func (s *session) authenticate(id uint64, token string) bool {
	g := s.g
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.AuthTimeout)
	conn := &clusterpb.ConnRef{Gateway: g.cfg.ID, Conn: s.id, Exclusive: s.kind == MQTT}
	if m, ok := s.t.(*mqttTransport); ok {
		conn.SessionExpiry, conn.CleanStart = m.storedSession()
	}
	reply, err := g.logic.Authenticate(ctx, &clusterpb.AuthRequest{Token: token, Conn: conn})
	cancel()
	if err != nil {
		g.log.Warn("authenticate failed", "conn", s.id, "err", err)
		s.closeWith(wire.CodeUnavailable,
			encodeEnvelope(s.enc, errorEnvelope(id, wire.CodeUnavailable, "authentication unavailable", 0)), false)
		return false
	}
	out, env, err := s.transcodeAuthReply(id, reply.GetEnvelope())
	if err != nil {
		g.log.Warn("undecodable auth reply from logic", "conn", s.id, "err", err)
		s.closeWith(wire.CodeInternal, encodeEnvelope(s.enc, errorEnvelope(id, wire.CodeInternal, "internal error", 0)), false)
		return false
	}
	if reply.GetConn() == nil {
		g.stats.authFailures.Add(1)
		code := wire.Code(env.GetError().GetCode())
		if code == 0 {
			code = wire.CodeUnauthenticated
		}
		s.closeWith(code, out, false)
		return false
	}
	ref := proto.CloneOf(reply.Conn)
	ref.Gateway, ref.Conn = g.cfg.ID, s.id // ours, whatever logic said
	s.ref = ref
	now := time.Now().UnixNano()
	s.tokens, s.last = float64(g.cfg.RateBurst), now
	g.shards.addUser(ref.UserId, s)
	if e, ok := g.ended.get(ref.SessionId, time.Now()); ok { // after addUser: see ended.go
		f := e.frame
		if s.enc == encJSON {
			if f, err = protoToJSON(f); err != nil {
				f = nil
			}
		}
		s.closeWith(e.code, f, false)
		return false
	}

	ctx, cancel = context.WithTimeout(g.ctx, g.cfg.AuthTimeout)
	err = g.presence.Connected(ctx, ref)
	cancel()
	s.connected = true // Disconnected is called even if Connected failed half way
	if err != nil {
		g.log.Warn("presence connected failed", "conn", s.id, "user_id", ref.UserId, "err", err)
		s.closeWith(wire.CodeUnavailable,
			encodeEnvelope(s.enc, errorEnvelope(id, wire.CodeUnavailable, "presence unavailable", 0)), false)
		return false
	}
	// AuthOK and the authed flag change together, so no delivery overtakes it.
	s.mu.Lock()
	k := s.early
	if !s.closing && k == nil {
		s.authed = true
	}
	s.mu.Unlock()
	if k != nil {
		s.closeWith(k.code, k.frame, false)
		return false
	}
	if ref.ExpiresMs > 0 { // the sweeper kicks with CodeSessionExpired then (park.go)
		s.expiresAt.Store(ref.ExpiresMs * int64(time.Millisecond))
	}
	// Count before the client can see AuthOK, so stats never lag it.
	g.stats.auths.Add(1)
	if !s.send(out) {
		return false
	}
	g.log.Debug("authenticated", "conn", s.id, "user_id", ref.UserId, "transport", s.kind.String())
	return true
}

// transcodeAuthReply puts the request id into logic's answer (logic does
// not see it) and heartbeat_seconds into an AuthOK (the gateway owns the
// heartbeat), and encodes the envelope for the connection.
func (s *session) transcodeAuthReply(id uint64, b []byte) ([]byte, *magpiepb.Envelope, error) {
	env := new(magpiepb.Envelope)
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, nil, err
	}
	env.Id = id
	if ok := env.GetAuthOk(); ok != nil {
		ok.HeartbeatSeconds = uint32(s.g.cfg.HeartbeatInterval / time.Second)
	}
	return encodeEnvelope(s.enc, env), env, nil
}

// finish runs once, on the reader goroutine, after the connection closed.
func (s *session) finish() {
	g := s.g
	if s.ref != nil {
		g.shards.removeUser(s.ref.UserId, s)
	}
	if s.connected {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(g.ctx), g.cfg.AuthTimeout)
		if err := g.presence.Disconnected(ctx, s.ref); err != nil {
			g.log.Warn("presence disconnected failed", "conn", s.id, "user_id", s.ref.UserId, "err", err)
		}
		cancel()
		if s.ref.SessionExpiry > 0 { // a stored MQTT session: its expiry counts from now
			g.logic.Forward(&clusterpb.Request{Conn: s.ref, ConnEnded: true}, func([]byte, error) {})
		}
	}
	s.mu.Lock()
	code := s.closeCode
	s.mu.Unlock()
	g.stats.disconnected(code, s.kind)
	g.shards.removeConn(s) // last: Drain waits for this
	g.log.Debug("closed", "conn", s.id, "code", uint32(code), "transport", s.kind.String())
}
