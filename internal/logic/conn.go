package logic

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// The long-connection side of the Service, in domain terms: the adapter
// (internal/adapter) decodes what gateways forward, looks the command up in
// its table and calls these; it also turns the errors into Error envelopes.

const requestTimeout = 15 * time.Second

// AuthResult is a connection that authenticated.
type AuthResult struct {
	Conn          *clusterpb.ConnRef // who it is, where; logic routes to it from now on
	Identity      Identity
	HeartbeatSecs uint32
}

// AuthenticateConn checks the token of a new connection (conn names only
// its gateway and number) and routes to it from now on.
func (s *Service) AuthenticateConn(ctx context.Context, token string, conn *clusterpb.ConnRef) (AuthResult, error) {
	if conn == nil {
		return AuthResult{}, invalid("missing connection")
	}
	id, err := s.Authenticate(ctx, token)
	if err != nil {
		return AuthResult{}, err
	}
	if max := s.cfg.MaxConnsPerUser; max > 0 && len(s.presence.Conns(id.UserID)) >= max {
		return AuthResult{}, &Error{
			Kind: KindRateLimited, Msg: fmt.Sprintf("too many connections for this user (limit %d)", max), RetryAfter: 5000, Err: ErrRateLimited,
		}
	}
	ref := &clusterpb.ConnRef{
		Gateway: conn.Gateway, Conn: conn.Conn, UserId: id.UserID,
		SessionId: id.SessionID, Device: id.Device, Platform: id.Platform, ExpiresMs: id.ExpiresAt.UnixMilli(),
		Exclusive: conn.Exclusive, SessionExpiry: conn.SessionExpiry, CleanStart: conn.CleanStart,
	}
	if ref.Exclusive {
		if err := s.startDeviceSession(ctx, ref); err != nil {
			return AuthResult{}, err
		}
		s.takeOverDevice(ref)
	}
	// Route to the connection from now on, before the bucket's watch says so.
	s.presence.Add(ref)
	return AuthResult{Conn: ref, Identity: id, HeartbeatSecs: s.cfg.HeartbeatSecs}, nil
}

// takeOverDevice closes the device's other exclusive (MQTT) connections on
// other gateways: a second CONNECT with a client id replaces the first
// (MQTT 3.1.4-3). The connection's own gateway does the same for its own
// connections when it answers CONNECT, so only the others are kicked here.
// Two CONNECTs at once through different logic nodes may both stay until
// the next one: each kicks only what its presence view already holds.
func (s *Service) takeOverDevice(ref *clusterpb.ConnRef) {
	var old []*clusterpb.ConnRef
	for _, c := range s.presence.Conns(ref.UserId) {
		if c.Exclusive && c.Device == ref.Device && c.Gateway != ref.Gateway {
			old = append(old, c)
		}
	}
	s.kick(old, KindReplaced, "another connection took this client id")
}

// Arrived is called for each request a connection forwards, before it
// runs. A token expires on a live connection too: Arrived then refuses the
// request and closes the connection, so the client logs in again. (The
// gateway closes it at expiry; this covers a request that crossed that
// close.)
func (s *Service) Arrived(c *clusterpb.ConnRef) (Identity, error) {
	now := s.now()
	if c.ExpiresMs > 0 && now.UnixMilli() >= c.ExpiresMs {
		s.kick([]*clusterpb.ConnRef{c}, KindSessionExpired, "session expired, log in again")
		return Identity{}, &Error{Kind: KindSessionExpired, Msg: "session expired, log in again", Err: ErrUnauthenticated}
	}
	s.seen(c.SessionId, now)
	return Identity{UserID: c.UserId, SessionID: c.SessionId, Device: c.Device, Platform: c.Platform}, nil
}

// Failer answers a request that cannot run (or whose first step failed)
// with an error. An interface rather than a func, so the adapter's
// per-request value serves as it is, without one more allocation per
// request.
type Failer interface{ Fail(err error) }

// FailFunc is a func as a Failer.
type FailFunc func(err error)

func (f FailFunc) Fail(err error) { f(err) }

// Ordered runs a send, recall or edit of connection c in arrival order on
// its lane (on this logic node; requests of one connection that reach
// different logic nodes are not ordered with each other). prepare is the
// request's first step (see laneItem); fail answers the request when it
// cannot run.
func (s *Service) Ordered(c *clusterpb.ConnRef, id Identity, fail Failer, prepare func(context.Context, Identity) (queue func())) {
	if !s.inLane(c.Gateway+"/"+strconv.FormatUint(c.Conn, 10), func() (then func()) {
		s.withUser(id, fail, func(ctx context.Context, id Identity) { then = prepare(ctx, id) })
		return then
	}) {
		fail.Fail(errBusy)
	}
}

// Read runs a read request (sync, history, online, a receipt) on its own
// goroutine, at most Config.MaxReads at once and none after Shutdown began;
// fn's context ends with the Service. When all slots are taken, or the
// Service is stopping, fail gets ErrOverloaded (unavailable, retry
// shortly) at once.
func (s *Service) Read(id Identity, fail Failer, fn func(context.Context, Identity)) {
	select {
	case s.reads <- struct{}{}:
	default:
		fail.Fail(errReadsBusy)
		return
	}
	if !s.accepting(func() { s.wg.Add(1) }) {
		<-s.reads
		fail.Fail(errReadsBusy)
		return
	}
	go func() {
		defer s.wg.Done()
		defer func() { <-s.reads }()
		s.withUser(id, fail, fn)
	}()
}

var errReadsBusy = unavailable("server busy, retry", 100*time.Millisecond, ErrOverloaded)

// SendSteps is a send's first step on its connection's lane (see Ordered).
func (s *Service) SendSteps(ctx context.Context, from Identity, req SendRequest, origin *clusterpb.ConnRef, done func(Ack, error)) func() {
	if err := s.allowSend(from.UserID); err != nil {
		done(Ack{}, err)
		return nil
	}
	return s.sendSteps(ctx, from, req, origin, done)
}

// ChangeSteps is a recall's or an edit's first step (see Ordered). A
// change is stored and fanned out like a send: it draws from the same
// per-user budget.
func (s *Service) ChangeSteps(ctx context.Context, from Identity, kind store.MessageKind, req ChangeRequest, origin *clusterpb.ConnRef, done func(Ack, error)) func() {
	if err := s.allowSend(from.UserID); err != nil {
		done(Ack{}, err)
		return nil
	}
	return s.changeSteps(ctx, from, kind, req, origin, done)
}

// withUser fills in the username (cached) and runs fn with a deadline.
func (s *Service) withUser(id Identity, fail Failer, fn func(context.Context, Identity)) {
	ctx, cancel := context.WithTimeout(s.life, requestTimeout)
	defer cancel()
	u, err := s.userOf(ctx, id.UserID)
	if err != nil {
		fail.Fail(err)
		return
	}
	id.Username, id.AppID = u.name, u.app
	fn(ctx, id)
}

// userRef is what the ids cache holds of a user: neither changes.
type userRef struct {
	name string
	app  int64
}

func (s *Service) userOf(ctx context.Context, uid int64) (userRef, error) {
	if v, ok := s.ids.Load(uid); ok {
		return v.(userRef), nil
	}
	u, err := s.store.UserByID(ctx, uid)
	if err != nil {
		return userRef{}, err
	}
	r := userRef{name: u.Username, app: appOrDefault(u.AppID)}
	s.ids.Store(uid, r)
	return r, nil
}

func (s *Service) usernameOf(ctx context.Context, uid int64) (string, error) {
	u, err := s.userOf(ctx, uid)
	return u.name, err
}
