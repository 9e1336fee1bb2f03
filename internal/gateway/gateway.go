// Package gateway is the role that holds client long connections: it
// accepts TCP and WebSocket connections, authenticates their first frame
// through Logic, answers pings, forwards every other request to Logic and
// writes the answers, and writes deliveries addressed to its connections.
//
// Every exported method of Gateway is safe to call concurrently, from any
// goroutine: Deliver and Kick never block on a client, ServeTCP may serve
// several listeners at once, and Drain and Shutdown may be called more than
// once and concurrently.
//
// Goroutines: one reader per connection while it reads (session.serve; an
// idle connection parks without one, park.go), plus a flush goroutine that
// exists only while the connection has frames queued (queue.go), and one
// sweeper and one poller per gateway; every goroutine is counted in
// Gateway.wg and Shutdown waits for them.
//
// Lock order (a lock may be taken while holding only locks above it):
//
//	Gateway.mu   listeners, draining/closed state
//	shard.mu     one shard of the connection or user index (never two at once)
//	session.mu   a session's outbound queue and state; a leaf: no calls out
//	             (Logic, Presence, blocking I/O) while held
//	endedSessions.mu  a leaf, taken with no other lock held
package gateway

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

// Config tunes a Gateway. Zero fields take the defaults shown.
type Config struct {
	ID                string        // gateway id, unique in the cluster (the caller makes it so)
	AuthTimeout       time.Duration // 5s: the first frame must be Auth within it; also bounds Logic and Presence calls
	HeartbeatInterval time.Duration // 30s: told to clients in AuthOK.heartbeat_seconds
	HeartbeatTimeout  time.Duration // 90s: close a connection silent this long
	SendQueue         int           // 1024 frames queued per connection; overflow disconnects (CodeSlowConsumer)
	MaxInFlight       int           // 64 forwarded requests awaiting Logic per connection
	RateLimit         float64       // 500 requests/s per connection
	RateBurst         int           // 1000
	AllowedOrigins    []string      // WebSocket Origins; empty: same host only; "*": any
	WriteTimeout      time.Duration // 10s per write; closing takes at most twice this
	AcceptRate        float64       // new connections per second, all listeners together; 0: no limit (accept.go)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.AuthTimeout, 5*time.Second)
	def(&c.HeartbeatInterval, 30*time.Second)
	def(&c.HeartbeatTimeout, 90*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	if c.SendQueue <= 0 {
		c.SendQueue = 1024
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 64
	}
	if c.RateLimit <= 0 {
		c.RateLimit = 500
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 1000
	}
	return c
}

// Gateway holds client connections. Create it with New.
type Gateway struct {
	cfg      Config
	logic    Logic
	local    LocalLogic // logic itself when it is a LocalLogic, else nil
	presence Presence
	log      *slog.Logger
	ctx      context.Context // ends when Shutdown gives up waiting; bounds backend calls
	cancel   context.CancelFunc
	nextID   atomic.Uint64
	firstID  uint64 // nextID's start: every connection id of this run is above it
	shards   shards
	stats    counters
	accepts  *rate.Limiter  // nil: no accept rate
	ended    endedSessions  // sessions logic ended just now, see ended.go
	wg       sync.WaitGroup // readers, flushers, accept loops
	stopped  chan struct{}  // closed when draining starts
	done     chan struct{}  // closed when Shutdown finished

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	draining  bool    // no new connections
	shutdown  bool    // Shutdown was called
	sweeping  bool    // the sweeper (and the poller) started (park.go)
	poll      *poller // parks idle connections; nil: none (park.go)
}

// New returns a Gateway; it serves nothing until ServeTCP or the handler
// of WebSocketHandler is used. A logic that is a LocalLogic gets the
// requests decoded (ForwardEnvelope).
func New(cfg Config, logic Logic, presence Presence, log *slog.Logger) *Gateway {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		cfg: cfg, logic: logic, presence: presence,
		log: log.With("gateway", cfg.ID),
		ctx: ctx, cancel: cancel,
		stopped:   make(chan struct{}),
		done:      make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
	}
	g.firstID = connIDBase(time.Now())
	g.nextID.Store(g.firstID)
	g.local, _ = logic.(LocalLogic)
	g.ended.ttl = cfg.AuthTimeout
	g.accepts = newAcceptLimiter(cfg.AcceptRate)
	g.shards.init()
	return g
}

// connIDBase is where a gateway's connection ids start: its start time in
// microseconds. The cluster addresses a connection by gateway id and
// connection id (presence, deliveries, kicks), and a gateway restarted
// under the same id finds the logic nodes still holding its last run's
// presence entries: ids counted from 1 again gave the new connection of
// one user the old id of another, who then got their messages and kicks
// ("replaced", meant for the old session). Ids from the start time never
// meet the last run's unless it opened over a million connections per
// second it ran, and stay below 2^53 (exact in JSON) until 2255.
func connIDBase(start time.Time) uint64 { return uint64(start.UnixMicro()) }

// startSession registers a new connection and starts its reader. It
// reports false (and the caller closes the connection) once draining.
func (g *Gateway) startSession(t transport, enc encoding, kind Kind) bool {
	s := &session{g: g, t: t, id: g.nextID.Add(1), enc: enc, kind: kind}
	if a, ok := t.(interface{ attach(*session) }); ok {
		a.attach(s) // a transport that writes answers of its own (MQTT)
	}
	s.readBy.Store(time.Now().Add(g.cfg.AuthTimeout).UnixNano())
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		return false
	}
	g.startIdleLoops()
	g.shards.addConn(s)
	g.wg.Add(1) // the reader's, until finish
	g.mu.Unlock()
	g.stats.connected(kind)
	go s.serve()
	return true
}

// kickFrame encodes a Kick for a connection.
func (g *Gateway) kickFrame(enc encoding, code wire.Code, reason string) []byte {
	return encodeEnvelope(enc, kickEnvelope(code, reason))
}

// Deliver writes d.Envelope (an encoded Envelope) to the listed connections,
// or to every authenticated connection if d.Broadcast, then closes them if
// d.CloseCode is set (the envelope is then a Kick). The same bytes go to
// every protobuf connection; JSON connections share one transcoding.
// Unknown and unauthenticated connections are skipped. With d.SessionId
// (and d.CloseCode) the session ended: its connections here are closed
// too, listed or not, and so is any that authenticates with it within the
// auth timeout (ended.go). It never blocks on a client: a full queue
// disconnects that client.
func (g *Gateway) Deliver(d *clusterpb.Delivery) {
	var (
		jsonFrame []byte
		jsonDone  bool
	)
	frameFor := func(enc encoding) []byte {
		if enc == encProto || len(d.Envelope) == 0 {
			return d.Envelope
		}
		if !jsonDone {
			jsonDone = true
			var err error
			if jsonFrame, err = protoToJSON(d.Envelope); err != nil {
				g.log.Warn("undecodable delivery", "err", err)
			}
		}
		return jsonFrame
	}
	code := wire.Code(d.CloseCode)
	one := func(s *session) {
		f := frameFor(s.enc) // nil: empty, or undecodable for JSON
		if code == 0 {
			if len(f) > 0 {
				s.enqueue(f, true)
			}
			return
		}
		if len(f) == 0 {
			f = nil
		}
		s.mu.Lock()
		authed := s.authed
		if !authed {
			// Logic revoked the session while this gateway was still
			// finishing its auth (presence write): apply it then.
			s.early = &earlyKick{code: code, frame: f}
		}
		s.mu.Unlock()
		if authed {
			s.closeWith(code, f, false)
		}
	}
	if d.Broadcast {
		g.shards.each(one)
		return
	}
	if d.SessionId != "" && code != 0 {
		g.ended.add(d.SessionId, code, d.Envelope, time.Now()) // before the index: see ended.go
		for _, s := range g.shards.userSessions(d.UserId) {
			if s.ref.SessionId == d.SessionId { // ref is set before the session enters the index
				one(s)
			}
		}
	}
	if d.SessionId != "" && code != 0 && d.UserId != 0 {
		// The session's connections were closed above, found by the
		// session itself; the listed ids come from presence, which may
		// still hold a dead gateway process's entries.
		return
	}
	for _, id := range d.Conns {
		if s := g.shards.conn(id); s != nil {
			one(s)
		}
	}
}

// Kick writes Kick{code, reason} (reconnect as code's action says) to the
// listed connections and closes them. Unknown ids are ignored.
func (g *Gateway) Kick(connIDs []uint64, code wire.Code, reason string) {
	var frames [2][]byte // by encoding, encoded at most once each
	for _, id := range connIDs {
		if s := g.shards.conn(id); s != nil {
			g.kickSession(s, &frames, code, reason)
		}
	}
}

func (g *Gateway) kickSession(s *session, frames *[2][]byte, code wire.Code, reason string) {
	if frames[s.enc] == nil {
		frames[s.enc] = g.kickFrame(s.enc, code, reason)
	}
	s.closeWith(code, frames[s.enc], false)
}

// Conns returns the number of open connections, authenticated or not.
func (g *Gateway) Conns() int { return g.shards.count() }

// FirstConnID is where this run's connection ids start: every one is above
// it. The registry entry carries it (GatewayInfo.first_conn), so logic
// nodes drop the presence entries a killed earlier run under the same id
// left behind.
func (g *Gateway) FirstConnID() uint64 { return g.firstID }

// UserConns returns the ids of a user's authenticated connections here.
func (g *Gateway) UserConns(userID int64) []uint64 { return g.shards.userConns(userID) }

// Drain stops accepting connections, kicks every connection with
// CodeDraining and reconnect set, and waits until all are closed or ctx
// ends; then it closes the rest at once and returns ctx.Err().
func (g *Gateway) Drain(ctx context.Context) error {
	g.stopAccepting()
	var frames [2][]byte
	g.shards.each(func(s *session) {
		g.kickSession(s, &frames, wire.CodeDraining, "gateway draining")
	})
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for g.Conns() > 0 {
		select {
		case <-ctx.Done():
			g.shards.each(func(s *session) { s.t.close() })
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func (g *Gateway) stopAccepting() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return
	}
	g.draining = true
	close(g.stopped)
	if g.poll != nil {
		g.poll.stop()
	}
	for ln := range g.listeners {
		ln.Close()
	}
}

// Shutdown drains (stop accepting, tell clients, wait for them), then waits
// for every goroutine of the gateway, all bounded by ctx. Calling it again
// waits for the first call to finish.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	first := !g.shutdown
	g.shutdown = true
	g.mu.Unlock()
	if !first {
		select {
		case <-g.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer close(g.done)
	err := g.Drain(ctx)
	if err != nil {
		g.cancel() // unblock readers waiting on Logic or Presence
	}
	waited := make(chan struct{})
	go func() { g.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		g.cancel()
		return ctx.Err()
	}
	g.cancel()
	return err
}
