package logic

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Ending sessions tells every live gateway, not only those presence
// names (a connection mid-auth is in no presence yet), with the session
// and a code and reason that say why.
func TestEndedSessionsReachEveryGateway(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		end    func(s *Service, me Identity, other string) error
		ended  func(me, other string) []string
		reason string
	}{
		{"logout all", func(s *Service, me Identity, _ string) error { return s.LogoutAll(ctx, me) },
			func(me, other string) []string { return []string{me, other} }, "logged out everywhere"},
		{"end one", func(s *Service, me Identity, other string) error { return s.EndSession(ctx, me, other) },
			func(_, other string) []string { return []string{other} }, "session ended from another device"},
		{"password", func(s *Service, me Identity, _ string) error {
			return s.ChangePassword(ctx, me, "password1", "password2")
		},
			func(_, other string) []string { return []string{other} }, "password changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, bus := newTestService(t, nil)
			meRes, otherRes := login(t, s, "alice", "phone", ""), login(t, s, "alice", "laptop", "")
			me, other := meRes.Identity, otherRes.Identity.SessionID
			tokens := map[string]string{me.SessionID: meRes.Token, other: otherRes.Token}
			bus.Add(&clusterpb.ConnRef{Gateway: "gw3", Conn: 7, UserId: me.UserID, SessionId: other}) // a gateway not in Live
			bus.take()
			if err := tt.end(s, me, other); err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{} // session → gateways told
			for _, d := range bus.take() {
				k := d.env.GetKick()
				if k == nil || d.close != uint32(wire.CodeLoggedOut) || k.Reason != tt.reason || d.session == "" {
					t.Fatalf("delivery %+v, want a logged_out kick saying %q for a session", d, tt.reason)
				}
				if d.gateway == "gw3" && !slices.Equal(d.conns, []uint64{7}) {
					t.Errorf("gw3 told conns %v, want the listed connection 7", d.conns)
				}
				got[d.session] = append(got[d.session], d.gateway)
			}
			want := tt.ended(me.SessionID, other)
			if len(got) != len(want) {
				t.Fatalf("sessions ended %v, want %v", got, want)
			}
			for _, sid := range want {
				gws := got[sid]
				slices.Sort(gws)
				wantGW := []string{"gw1", "gw2"}
				if sid == other {
					wantGW = []string{"gw1", "gw2", "gw3"}
				}
				if !slices.Equal(gws, wantGW) {
					t.Errorf("session %s told to %v, want %v", sid, gws, wantGW)
				}
				if _, err := s.Authenticate(ctx, tokens[sid]); Code(err) != wire.CodeUnauthenticated {
					t.Errorf("token of ended session %s: %v, want unauthenticated", sid, err)
				}
			}
			if len(want) == 1 { // the caller's session stays
				if _, err := s.Authenticate(ctx, meRes.Token); err != nil {
					t.Errorf("caller's token: %v", err)
				}
			}
		})
	}
}

// Another user's session cannot be ended, and says not found.
func TestEndSessionOfAnotherUser(t *testing.T) {
	s, _ := newTestService(t, nil)
	alice := login(t, s, "alice", "phone", "").Identity
	bob := login(t, s, "bob", "phone", "")
	if err := s.EndSession(context.Background(), alice, bob.Identity.SessionID); Code(err) != wire.CodeNotFound {
		t.Fatalf("EndSession(bob's): %v, want not_found", err)
	}
	if _, err := s.Authenticate(context.Background(), bob.Token); err != nil {
		t.Fatalf("bob's session after alice tried to end it: %v", err)
	}
}

// passwordRaceStore changes the password while a login is between its
// password check and the creation of its session.
type passwordRaceStore struct {
	store.Store
	once   sync.Once
	change func()
}

func (p *passwordRaceStore) CreateSession(ctx context.Context, sess store.Session) error {
	p.once.Do(p.change)
	return p.Store.CreateSession(ctx, sess)
}

// A login that checked the old password must not outlive a password change
// that ended every other session just before the login's session existed.
func TestLoginRacingPasswordChangeIsRefused(t *testing.T) {
	ctx := context.Background()
	race := &passwordRaceStore{change: func() {}}
	s, _ := newTestServiceOn(t, nil, func(st store.Store) store.Store { race.Store = st; return race })
	me := login(t, s, "alice", "phone", "").Identity
	race.once = sync.Once{} // the login above used the no-op
	race.change = func() {
		if err := s.ChangePassword(ctx, me, "password1", "password2"); err != nil {
			t.Errorf("change password: %v", err)
		}
	}
	if _, err := s.Login(ctx, "alice", "password1", "laptop", ""); Code(err) != wire.CodeInvalidCredential {
		t.Fatalf("login with the old password during a change: %v, want invalid_credentials", err)
	}
	active, err := s.store.ActiveSessions(ctx, me.UserID, s.now())
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0].ID != me.SessionID {
		t.Fatalf("active sessions %+v, want only the one that changed the password", active)
	}
	if _, err := s.Login(ctx, "alice", "password2", "laptop", ""); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
}

// TestSeenCountsOnlyTrackedSessions: a last-seen write dropped on a full
// queue forgets its session, and the count of tracked sessions follows.
// Left counted, every drop inflated it for good, and past seenLimit each
// new session made a pass over the whole map.
func TestSeenCountsOnlyTrackedSessions(t *testing.T) {
	s := &Service{cfg: Config{SeenEvery: time.Minute}}
	s.seenT.queue = make(chan seenWrite) // no writer: every write is dropped
	now := time.Now()
	for i := range 5 {
		s.seen(fmt.Sprintf("s%d", i), now)
		s.seen(fmt.Sprintf("s%d", i), now.Add(2*time.Minute)) // known, due again, dropped again
	}
	if n := s.seenT.count.Load(); n != 0 {
		t.Fatalf("count %d after five dropped sessions, want 0", n)
	}
	s.seenT.queue = make(chan seenWrite, 1)
	s.seen("kept", now)
	if n := s.seenT.count.Load(); n != 1 {
		t.Fatalf("count %d with one session tracked, want 1", n)
	}
}
