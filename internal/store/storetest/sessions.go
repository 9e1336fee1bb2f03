package storetest

import (
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testSessionLastSeen: LastSeen starts at CreatedAt, follows TouchSession
// forward only, and shows in Session and ActiveSessions.
func testSessionLastSeen(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	ss := store.Session{ID: "s1", UserID: alice.ID, Device: "d", Platform: "ios", CreatedAt: at(0), ExpiresAt: at(3600)}
	if err := s.CreateSession(ctx, ss); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	seen := func(want int) {
		t.Helper()
		got, err := s.Session(ctx, "s1")
		if err != nil {
			t.Fatalf("Session: %v", err)
		}
		if !got.LastSeen.Equal(at(want)) {
			t.Errorf("Session.LastSeen = %v, want %v", got.LastSeen, at(want))
		}
		active, err := s.ActiveSessions(ctx, alice.ID, at(1))
		if err != nil || len(active) != 1 || !active[0].LastSeen.Equal(at(want)) {
			t.Errorf("ActiveSessions = %+v, %v; want one with LastSeen %v", active, err, at(want))
		}
	}
	seen(0) // never touched: its creation
	if err := s.TouchSession(ctx, "s1", at(120)); err != nil {
		t.Fatalf("TouchSession: %v", err)
	}
	seen(120)
	if err := s.TouchSession(ctx, "s1", at(60)); err != nil { // a late, older write
		t.Fatalf("TouchSession(older): %v", err)
	}
	seen(120)
	wantErr(t, "TouchSession(unknown)", s.TouchSession(ctx, "nope", at(1)), store.ErrNotFound)
}

func testSetPasswordHash(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	if err := s.SetPasswordHash(ctx, alice.ID, "new-hash"); err != nil {
		t.Fatalf("SetPasswordHash: %v", err)
	}
	for _, tc := range []struct {
		name, want string
	}{{"alice", "new-hash"}, {"bob", bob.PasswordHash}} {
		u, err := s.UserByName(ctx, store.DefaultApp, tc.name)
		if err != nil || u.PasswordHash != tc.want {
			t.Errorf("UserByName(%s) = %q, %v; want hash %q", tc.name, u.PasswordHash, err, tc.want)
		}
	}
	wantErr(t, "SetPasswordHash(unknown)", s.SetPasswordHash(ctx, 1<<40, "x"), store.ErrNotFound)
}
