package logic

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Sessions a user controls: the list of their logins, ending one or all of
// them, and a password change that ends the others. Every ended session's
// live connections are closed at once (revoke).

// SessionInfo is one of a user's active sessions, as GET /v1/sessions
// shows it.
type SessionInfo struct {
	ID        string
	Device    string
	Platform  string
	CreatedAt time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
	Online    bool // a connection of it is live now
	Current   bool // the session the request came with
}

// Sessions lists the caller's active sessions (not revoked, not expired),
// oldest first. A session with a live connection was seen now: the stored
// time moves only on authentications and requests, not on pings.
func (s *Service) Sessions(ctx context.Context, id Identity) ([]SessionInfo, error) {
	now := s.now()
	active, err := s.store.ActiveSessions(ctx, id.UserID, now)
	if err != nil {
		return nil, err
	}
	online := map[string]bool{}
	for _, c := range s.presence.Conns(id.UserID) {
		online[c.SessionId] = true
	}
	out := make([]SessionInfo, 0, len(active))
	for _, a := range active {
		si := SessionInfo{ID: a.ID, Device: a.Device, Platform: a.Platform, CreatedAt: a.CreatedAt,
			LastSeen: a.LastSeen, ExpiresAt: a.ExpiresAt, Online: online[a.ID], Current: a.ID == id.SessionID}
		if si.Online || si.Current {
			si.LastSeen = now
		}
		out = append(out, si)
	}
	return out, nil
}

// EndSession ends one of the caller's sessions (the caller's own included).
// Another user's session, or one already ended, is not found: nothing tells
// a guesser that the id exists.
func (s *Service) EndSession(ctx context.Context, id Identity, sessionID string) error {
	sess, err := s.store.Session(ctx, sessionID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil || sess.UserID != id.UserID || sess.Revoked || !s.now().Before(sess.ExpiresAt) {
		return notFound("no such session", store.ErrNotFound)
	}
	reason := "session ended from another device"
	if sessionID == id.SessionID {
		reason = "session ended"
	}
	s.revoke(ctx, sess, KindLoggedOut, reason)
	return nil
}

// LogoutAll ends every session of the caller's user, the caller's own last.
func (s *Service) LogoutAll(ctx context.Context, id Identity) error {
	if err := s.revokeOthers(ctx, id, "logged out everywhere"); err != nil {
		return err
	}
	s.revoke(ctx, store.Session{ID: id.SessionID, UserID: id.UserID}, KindLoggedOut, "logged out everywhere")
	return nil
}

// revokeOthers ends every active session of id's user but id's own.
func (s *Service) revokeOthers(ctx context.Context, id Identity, reason string) error {
	active, err := s.store.ActiveSessions(ctx, id.UserID, s.now())
	if err != nil {
		return err
	}
	for _, a := range active {
		if a.ID != id.SessionID {
			s.revoke(ctx, a, KindLoggedOut, reason)
		}
	}
	return nil
}

// ChangePassword checks the old password the way Login does (the same
// per-user attempt limit and the bounded Argon2 work), stores the new
// one's hash and ends every other session of the user. A wrong old
// password is ErrInvalidCredentials.
func (s *Service) ChangePassword(ctx context.Context, id Identity, oldPassword, newPassword string) error {
	if oldPassword == "" {
		return invalid("old password is required")
	}
	if err := validPassword(newPassword); err != nil {
		return err
	}
	if len(oldPassword) > wire.MaxPassword {
		return ErrInvalidCredentials
	}
	if ok, wait := s.logins.allow(strings.ToLower(id.Username), s.now()); !ok {
		return rateLimited("too many login attempts", wait)
	}
	u, err := s.store.UserByID(ctx, id.UserID)
	if err != nil {
		return err
	}
	if src := sourceOf(u); src != "local" {
		return forbidden("the password of this account is kept by its login source ("+src+"): change it there", ErrBadRequest)
	}
	var ok bool
	if herr := s.hashWithin(ctx, func() { ok, err = checkPassword(u.PasswordHash, oldPassword) }); herr != nil {
		return herr
	}
	if err != nil || !ok {
		return ErrInvalidCredentials
	}
	var h string
	if herr := s.hashWithin(ctx, func() { h, err = hashPassword(newPassword) }); herr != nil {
		return herr
	}
	if err != nil {
		return err
	}
	if err := s.store.SetPasswordHash(ctx, id.UserID, h); err != nil {
		return err
	}
	return s.revokeOthers(ctx, id, "password changed")
}

// revoke ends a session and closes its live connections with the code
// of kind. The
// kick goes to every live gateway, not only those presence names: a
// connection whose auth read the session before it was revoked may not be
// in presence yet, and the gateway closes it when its auth completes
// (gateway/ended.go). Sessions end rarely; one message per gateway is cheap.
func (s *Service) revoke(ctx context.Context, sess store.Session, kind Kind, reason string) {
	code := codes[kind]
	if err := s.store.RevokeSession(ctx, sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("revoke session", "err", err)
	}
	s.forgetSeen(sess.ID)
	targets := map[string][]uint64{}
	for _, gw := range s.gateways.Live() {
		targets[gw.Id] = nil
	}
	for _, c := range s.presence.Conns(sess.UserID) {
		if c.SessionId == sess.ID {
			targets[c.Gateway] = append(targets[c.Gateway], c.Conn)
		}
	}
	env := s.enc.Kick(code, reason)
	gws := make([]string, 0, len(targets))
	for gw := range targets {
		gws = append(gws, gw)
	}
	slices.Sort(gws)
	for _, gw := range gws {
		d := &clusterpb.Delivery{Conns: targets[gw], Envelope: env, CloseCode: uint32(code), SessionId: sess.ID, UserId: sess.UserID}
		if err := s.out.Deliver(gw, d); err != nil {
			s.log.Warn("kick delivery", "gateway", gw, "err", err)
		}
	}
}

// seenEvery is how often a session's last-seen time is written at most.
const seenEvery = time.Minute

// seenTracker throttles last-seen writes to one per session per
// Config.SeenEvery, in memory, and hands them to one writer goroutine
// (Service.seenLoop) without blocking: authentication and requests never
// wait for it. A write that finds the queue full is skipped; the next one
// after the interval is tried again.
type seenTracker struct {
	last  sync.Map // session id → unix nanoseconds of the last write queued
	count atomic.Int64
	queue chan seenWrite
	sweep sync.Mutex // one pruning pass at a time
}

type seenWrite struct {
	session string
	at      time.Time
}

// seenLimit bounds the tracker's map: past it, entries older than the
// interval are dropped (they would be written again anyway).
const seenLimit = 100_000

// seen records that a session authenticated or made a request at now.
func (s *Service) seen(session string, now time.Time) {
	t := &s.seenT
	n := now.UnixNano()
	if v, ok := t.last.Load(session); ok && n-v.(int64) < int64(s.cfg.SeenEvery) {
		return
	}
	if _, loaded := t.last.Swap(session, n); !loaded && t.count.Add(1) > seenLimit {
		s.pruneSeen(n)
	}
	select {
	case t.queue <- seenWrite{session, now}:
	default:
		s.forgetSeen(session) // try again next time (and stop counting it)
	}
}

func (s *Service) pruneSeen(now int64) {
	t := &s.seenT
	if !t.sweep.TryLock() {
		return
	}
	defer t.sweep.Unlock()
	t.last.Range(func(k, v any) bool {
		if now-v.(int64) >= int64(s.cfg.SeenEvery) {
			if _, ok := t.last.LoadAndDelete(k); ok {
				t.count.Add(-1)
			}
		}
		return true
	})
}

func (s *Service) forgetSeen(session string) {
	if _, ok := s.seenT.last.LoadAndDelete(session); ok {
		s.seenT.count.Add(-1)
	}
}

// seenLoop writes last-seen times until Shutdown.
func (s *Service) seenLoop() {
	for {
		select {
		case w := <-s.seenT.queue:
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HealthTimeout)
			err := s.store.TouchSession(ctx, w.session, w.at)
			cancel()
			if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrClosed) {
				s.log.Debug("session last seen", "err", err)
			}
		case <-s.stop:
			return
		}
	}
}
