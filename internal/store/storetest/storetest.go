// Package storetest is the shared test suite every store.Store backend
// runs, so that all backends keep the same contract.
//
// Usage, from a backend's tests:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTestStore(t) })
//	}
//
// open must return an empty store and register its Close with t.Cleanup;
// Close must tolerate being called twice.
package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// Run runs every test of the suite, each against a fresh store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Users", testUsers},
		{"UsersByID", testUsersByID},
		{"Sessions", testSessions},
		{"SessionLastSeen", testSessionLastSeen}, // sessions.go
		{"SetPasswordHash", testSetPasswordHash},
		{"ExternalUsers", testExternalUsers}, // users.go
		{"ImportUsers", testImportUsers},
		{"Apps", testApps},             // apps.go
		{"Imports", testImports},       // imports.go
		{"Moderation", testModeration}, // moderation.go
		{"Profiles", testProfiles},     // profiles.go
		{"AppendSeqs", testAppendSeqs},
		{"AppendIdempotent", testAppendIdempotent},
		{"AppendSameIDInBatch", testAppendSameIDInBatch},
		{"AppendDuplicateOtherConversation", testAppendDuplicateOtherConversation},
		{"AppendNotMember", testAppendNotMember},
		{"AppendPerMessageErrors", testAppendPerMessageErrors},
		{"AppendConcurrent", testAppendConcurrent},
		{"AppendConcurrentConversations", testAppendConcurrentConversations},
		{"AppendConcurrentRetries", testAppendConcurrentRetries},
		{"Messages", testMessages},
		{"Conversations", testConversations},
		{"ConversationNotMember", testConversationNotMember},
		{"Members", testMembers},
		{"Cursors", testCursors},
		{"CursorBatch", testCursorBatch},
		{"SenderCursors", testSenderCursors},
		{"DeviceSessions", testDeviceSessions}, // devices.go
		{"Closed", testClosed},
		// groups.go, social.go
		{"GroupCreate", testGroupCreate},
		{"GroupWindow", testGroupWindow},
		{"GroupRejoin", testGroupRejoin},
		{"GroupRoles", testGroupRoles},
		{"GroupMute", testGroupMute},
		{"GroupSizeAndPolicy", testGroupSizeAndPolicy},
		{"GroupConcurrent", testGroupConcurrent},
		{"GroupJoinRequests", testGroupJoinRequests}, // groupmore.go
		{"GroupProfile", testGroupProfile},
		{"GroupChanges", testGroupChanges},
		{"MessageReads", testMessageReads},
		{"RecallEdit", testRecallEdit},
		{"RecallEditInBatch", testRecallEditInBatch},
		{"RecallBlanksEdits", testRecallBlanksEdits},
		{"MessageByClientID", testMessageByClientID},
		{"FileVisible", testFileVisible},
		{"Friends", testFriends},
		{"Blocks", testBlocks},
		{"FriendPolicy", testFriendPolicy}, // friends.go
		{"FriendInfo", testFriendInfo},
		{"FriendChanges", testFriendChanges},
		{"ConversationFlags", testConversationFlags},
		{"HideConversation", testHideConversation}, // hide.go
		{"ContactIDs", testContactIDs},
		{"Scheduled", testScheduled}, // scheduled.go
		{"ScheduledClaimsOnce", testScheduledClaimsOnce},
		{"ScheduledRefused", testScheduledRefused},
		{"Search", testSearch}, // search.go
		{"SearchWindows", testSearchWindows},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// base is a fixed time with whole milliseconds, which every backend can
// store exactly.
var base = time.UnixMilli(1_700_000_000_000).UTC()

func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func mustUser(t *testing.T, s store.Store, name string) store.User {
	t.Helper()
	u, err := s.CreateUser(t.Context(), store.DefaultApp, name, "hash-"+name)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", name, err)
	}
	return u
}

// privateReq builds a request from one user to another.
func privateReq(from, to store.User, cmid, text string, sentAt time.Time) store.AppendRequest {
	return store.AppendRequest{
		ConversationID: store.PrivateConversationID(from.ID, to.ID),
		SenderID:       from.ID,
		PeerID:         to.ID,
		ClientMsgID:    cmid,
		Text:           text,
		SentAt:         sentAt,
	}
}

// mustAppend appends a batch and fails on any batch or per-message error.
func mustAppend(t *testing.T, s store.Store, reqs ...store.AppendRequest) []store.AppendResult {
	t.Helper()
	res, err := s.AppendMessages(t.Context(), reqs)
	if err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	if len(res) != len(reqs) {
		t.Fatalf("AppendMessages returned %d results for %d requests", len(res), len(reqs))
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("AppendMessages: result %d: %v", i, r.Err)
		}
	}
	return res
}

// sendN sends n messages from one user to another, one batch each, with
// client ids prefix-0, prefix-1, ... and SentAt base+1s, base+2s, ...
func sendN(t *testing.T, s store.Store, from, to store.User, prefix string, n int) []store.Message {
	t.Helper()
	var out []store.Message
	for i := range n {
		r := mustAppend(t, s, privateReq(from, to, fmt.Sprintf("%s-%d", prefix, i), fmt.Sprintf("%s text %d", prefix, i), at(i+1)))
		out = append(out, r[0].Message)
	}
	return out
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: got error %v, want %v", what, got, want)
	}
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "Alice")
	if alice.ID == 0 || alice.Username != "Alice" || alice.PasswordHash != "hash-Alice" || alice.CreatedAt.IsZero() {
		t.Fatalf("CreateUser = %+v, want an id, the name as given, the hash and a creation time", alice)
	}
	bob := mustUser(t, s, "bob")
	if bob.ID == alice.ID {
		t.Fatalf("two users got the same id %d", bob.ID)
	}

	for _, name := range []string{"Alice", "alice", "ALICE", "aLiCe"} {
		_, err := s.CreateUser(ctx, store.DefaultApp, name, "x")
		wantErr(t, fmt.Sprintf("CreateUser(%q) again", name), err, store.ErrExists)

		got, err := s.UserByName(ctx, store.DefaultApp, name)
		if err != nil {
			t.Fatalf("UserByName(%q): %v", name, err)
		}
		if got.ID != alice.ID || got.Username != "Alice" || got.PasswordHash != "hash-Alice" {
			t.Errorf("UserByName(%q) = %+v, want id %d named %q", name, got, alice.ID, "Alice")
		}
	}
	got, err := s.UserByID(ctx, bob.ID)
	if err != nil || got.Username != "bob" || !got.CreatedAt.Equal(bob.CreatedAt) {
		t.Errorf("UserByID(%d) = %+v, %v; want %+v", bob.ID, got, err, bob)
	}

	_, err = s.UserByName(ctx, store.DefaultApp, "nobody")
	wantErr(t, "UserByName(unknown)", err, store.ErrNotFound)
	_, err = s.UserByID(ctx, bob.ID+1000)
	wantErr(t, "UserByID(unknown)", err, store.ErrNotFound)
}

func testUsersByID(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	tests := []struct {
		name string
		ids  []int64
		want []int64
	}{
		{"none", nil, nil},
		{"unknown only", []int64{bob.ID + 1000}, nil},
		{"both", []int64{bob.ID, alice.ID}, []int64{alice.ID, bob.ID}},
		{"repeats and unknown", []int64{alice.ID, bob.ID + 1000, alice.ID}, []int64{alice.ID}},
	}
	for _, tt := range tests {
		users, err := s.UsersByID(t.Context(), tt.ids)
		if err != nil {
			t.Fatalf("%s: UsersByID: %v", tt.name, err)
		}
		var got []int64
		for _, u := range users {
			got = append(got, u.ID)
			if u.Username == "" {
				t.Errorf("%s: user %d has no name", tt.name, u.ID)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: UsersByID(%v) = %v, want %v", tt.name, tt.ids, got, tt.want)
		}
	}
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	now := at(3600)
	sess := func(id string, user store.User, created, expires time.Duration) store.Session {
		return store.Session{ID: id, UserID: user.ID, Device: "dev-" + id, Platform: "ios",
			CreatedAt: now.Add(created), ExpiresAt: now.Add(expires)}
	}
	all := []store.Session{
		sess("newest", alice, -10*time.Minute, time.Hour),
		sess("oldest", alice, -3*time.Hour, time.Hour),
		sess("expired", alice, -2*time.Hour, -time.Minute),
		sess("expires-now", alice, -2*time.Hour, 0),
		sess("revoked", alice, -time.Hour, time.Hour),
		sess("bobs", bob, -time.Hour, time.Hour),
	}
	for _, ss := range all {
		if err := s.CreateSession(ctx, ss); err != nil {
			t.Fatalf("CreateSession(%s): %v", ss.ID, err)
		}
	}
	for _, id := range []string{"revoked", "revoked"} { // twice: not an error
		if err := s.RevokeSession(ctx, id); err != nil {
			t.Fatalf("RevokeSession(%s): %v", id, err)
		}
	}
	wantErr(t, "RevokeSession(unknown)", s.RevokeSession(ctx, "nope"), store.ErrNotFound)

	got, err := s.Session(ctx, "oldest")
	if err != nil {
		t.Fatalf("Session: %v", err)
	}
	want := all[1]
	if got.ID != want.ID || got.UserID != want.UserID || got.Device != want.Device || got.Platform != want.Platform ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || got.Revoked {
		t.Errorf("Session = %+v, want %+v", got, want)
	}
	for _, id := range []string{"revoked", "expired"} { // returned as they are
		got, err := s.Session(ctx, id)
		if err != nil {
			t.Fatalf("Session(%s): %v", id, err)
		}
		if got.Revoked != (id == "revoked") {
			t.Errorf("Session(%s).Revoked = %v", id, got.Revoked)
		}
	}
	_, err = s.Session(ctx, "nope")
	wantErr(t, "Session(unknown)", err, store.ErrNotFound)

	active, err := s.ActiveSessions(ctx, alice.ID, now)
	if err != nil {
		t.Fatalf("ActiveSessions: %v", err)
	}
	var ids []string
	for _, ss := range active {
		ids = append(ids, ss.ID)
	}
	if wantIDs := []string{"oldest", "newest"}; !slices.Equal(ids, wantIDs) {
		t.Errorf("ActiveSessions = %v, want %v (oldest first, no revoked or expired)", ids, wantIDs)
	}
	// Later, everything has expired.
	active, err = s.ActiveSessions(ctx, alice.ID, now.Add(2*time.Hour))
	if err != nil || len(active) != 0 {
		t.Errorf("ActiveSessions after expiry = %v, %v; want none", active, err)
	}
}

func testClosed(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping on an open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]func() error{
		"CreateUser": func() error { _, err := s.CreateUser(ctx, store.DefaultApp, "bob", "x"); return err },
		"UserByName": func() error { _, err := s.UserByName(ctx, store.DefaultApp, "alice"); return err },
		"Session":    func() error { _, err := s.Session(ctx, "x"); return err },
		"AppendMessages": func() error {
			_, err := s.AppendMessages(ctx, []store.AppendRequest{privateReq(alice, alice, "c", "t", base)})
			return err
		},
		"Messages":      func() error { _, err := s.Messages(ctx, alice.ID, store.MessageQuery{ConversationID: "x"}); return err },
		"Conversations": func() error { _, err := s.Conversations(ctx, alice.ID); return err },
		"MoveCursor":    func() error { _, err := s.MoveCursor(ctx, alice.ID, "x", store.Read, 1); return err },
		"Ping":          func() error { return s.Ping(ctx) },
		"TouchSession":  func() error { return s.TouchSession(ctx, "x", base) },
		"SetPassword":   func() error { return s.SetPasswordHash(ctx, alice.ID, "x") },
	}
	for name, call := range calls {
		wantErr(t, name+" after Close", call(), store.ErrClosed)
	}
}
