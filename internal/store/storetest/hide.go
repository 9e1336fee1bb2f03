package storetest

import (
	"math"
	"slices"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// listed reports whether conv is in the user's conversation list, and it.
func listed(t *testing.T, s store.Store, user store.User, conv string) (store.Conversation, bool) {
	t.Helper()
	cs, err := s.Conversations(t.Context(), user.ID)
	if err != nil {
		t.Fatalf("Conversations: %v", err)
	}
	for _, c := range cs {
		if c.ID == conv {
			return c, true
		}
	}
	return store.Conversation{}, false
}

func testHideConversation(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	p := store.PrivateConversationID(alice.ID, bob.ID)
	mustAppend(t, s,
		privateReq(alice, bob, "a1", "budget one", at(1)),
		privateReq(bob, alice, "b1", "budget two", at(2)),
		privateReq(bob, alice, "b2", "budget three", at(3)))

	// Hidden: out of alice's list only, history intact, back with a new message.
	seq, err := s.HideConversation(ctx, alice.ID, p, false)
	if err != nil || seq != 3 {
		t.Fatalf("hide = %d, %v; want 3", seq, err)
	}
	if _, ok := listed(t, s, alice, p); ok {
		t.Error("a hidden conversation is still in alice's list")
	}
	if _, ok := listed(t, s, bob, p); !ok {
		t.Error("alice hiding it took it out of bob's list")
	}
	if got := seqs(readAll(t, s, alice.ID, p)); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Errorf("hiding changed alice's history: %v", got)
	}
	mustAppend(t, s, privateReq(bob, alice, "b3", "budget four", at(4)))
	c, ok := listed(t, s, alice, p)
	if !ok || c.LastSeq != 4 || c.Unread() != 3 {
		t.Errorf("after a new message alice's list has %v %+v; want it back with 3 unread (seq 1 is hers)", ok, c)
	}

	// Cleared: alice's history, search and unread start after seq 4; bob's do not.
	if seq, err := s.HideConversation(ctx, alice.ID, p, true); err != nil || seq != 4 {
		t.Fatalf("clear = %d, %v; want 4", seq, err)
	}
	if _, ok := listed(t, s, alice, p); ok {
		t.Error("a cleared conversation is still in alice's list")
	}
	if got := readAll(t, s, alice.ID, p); len(got) != 0 {
		t.Errorf("alice's history after the clear: %v, want none", seqs(got))
	}
	if got := search(t, s, alice, "", "budget"); len(got) != 0 {
		t.Errorf("alice finds cleared messages: %v", got)
	}
	if got := search(t, s, bob, "", "budget"); len(got) != 4 {
		t.Errorf("bob's search after alice's clear: %v, want 4 hits", got)
	}
	if got := seqs(readAll(t, s, bob.ID, p)); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Errorf("alice's clear changed bob's history: %v", got)
	}
	mustAppend(t, s, privateReq(bob, alice, "b4", "budget five", at(5)))
	c, ok = listed(t, s, alice, p)
	if !ok || c.Unread() != 1 || c.ClearedSeq != 4 || c.LastMessage == nil || c.LastMessage.Seq != 5 {
		t.Errorf("after the clear and a new message: %v %+v; want it listed, 1 unread, last message 5", ok, c)
	}
	if got := seqs(readAll(t, s, alice.ID, p)); !slices.Equal(got, []uint64{5}) {
		t.Errorf("alice's history after the clear and a new message: %v, want [5]", got)
	}
	page, err := s.Messages(ctx, alice.ID, store.MessageQuery{ConversationID: p, BeforeSeq: math.MaxInt64, Limit: 10})
	if err != nil || !slices.Equal(seqs(page), []uint64{5}) {
		t.Errorf("alice's newest page after the clear: %v, %v; want [5]", seqs(page), err)
	}
	if got := search(t, s, alice, "", "budget"); !slices.Equal(got, []string{hit(p, 5)}) {
		t.Errorf("alice's search after the clear: %v, want only seq 5", got)
	}

	_, err = s.HideConversation(ctx, carol.ID, p, false)
	wantErr(t, "hiding someone else's conversation", err, store.ErrNotMember)
	_, err = s.HideConversation(ctx, alice.ID, "p_998_999", true)
	wantErr(t, "hiding a conversation that does not exist", err, store.ErrNotMember)
}

func testContactIDs(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol, dave, erin := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave"), mustUser(t, s, "erin")
	contacts := func(u store.User) []int64 {
		t.Helper()
		ids, err := s.ContactIDs(ctx, u.ID)
		if err != nil {
			t.Fatalf("ContactIDs(%s): %v", u.Username, err)
		}
		slices.Sort(ids)
		return ids
	}
	if got := contacts(alice); len(got) != 0 {
		t.Fatalf("a new user's contacts: %v, want none", got)
	}
	mustAppend(t, s, privateReq(alice, bob, "a1", "hi", at(1)))   // a private chat
	mustAppend(t, s, privateReq(alice, alice, "a2", "me", at(1))) // a chat with oneself adds nobody
	if _, err := s.RequestFriend(ctx, alice.ID, carol.ID, at(2)); err != nil {
		t.Fatal(err)
	}
	if got := contacts(alice); !slices.Equal(got, []int64{bob.ID}) {
		t.Errorf("alice with a chat with bob and a request to carol: %v, want [bob]", got)
	}
	if _, err := s.RequestFriend(ctx, carol.ID, alice.ID, at(3)); err != nil { // now friends
		t.Fatal(err)
	}
	g := mustGroup(t, s, 0, dave, alice) // dave's group with alice
	if got := contacts(alice); !slices.Equal(got, []int64{bob.ID, carol.ID, dave.ID}) {
		t.Errorf("alice's contacts: %v, want bob (chat), carol (friend), dave (group)", got)
	}
	if got := contacts(dave); !slices.Equal(got, []int64{alice.ID}) {
		t.Errorf("dave's contacts: %v, want [alice]", got)
	}
	if got := contacts(erin); len(got) != 0 {
		t.Errorf("erin's contacts: %v, want none", got)
	}
	if _, err := s.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpLeave,
		Event: store.Event{Type: "left", ActorID: alice.ID, Actor: "alice"}, At: at(4)}); err != nil {
		t.Fatal(err)
	}
	if got := contacts(dave); len(got) != 0 {
		t.Errorf("dave's contacts after alice left his group: %v, want none", got)
	}
}
