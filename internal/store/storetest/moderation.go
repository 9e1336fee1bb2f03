package storetest

import (
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testModeration: disabling revokes sessions and can be undone; deleting
// frees the name, drops contacts and (with erase) blanks every message the
// user sent; listing pages by id and matches names; a removed message is
// blanked with its edits and followed by a RECALL that says an admin did it.
func testModeration(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	if err := s.CreateSession(ctx, store.Session{ID: "s-bob", UserID: bob.ID, CreatedAt: at(0), ExpiresAt: at(3600)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUserDisabled(ctx, bob.ID, true, at(1)); err != nil {
		t.Fatal(err)
	}
	if sess, _ := s.Session(ctx, "s-bob"); !sess.Revoked {
		t.Error("disabling bob left his session alive")
	}
	if u, _ := s.UserByID(ctx, bob.ID); u.DisabledAt.IsZero() {
		t.Error("bob is not disabled")
	}
	if err := s.SetUserDisabled(ctx, bob.ID, false, at(2)); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.UserByName(ctx, store.DefaultApp, "bob"); !u.DisabledAt.IsZero() {
		t.Error("bob is still disabled after enabling")
	}
	wantErr(t, "SetUserDisabled of no user", s.SetUserDisabled(ctx, 99999, true, at(2)), store.ErrNotFound)

	// Listing: pages by id, a match on the name.
	page, err := s.ListUsers(ctx, store.DefaultApp, store.UserQuery{Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != alice.ID || page[1].ID != bob.ID {
		t.Fatalf("ListUsers first page = %+v, %v", page, err)
	}
	if page, _ := s.ListUsers(ctx, store.DefaultApp, store.UserQuery{AfterID: bob.ID, Limit: 2}); len(page) != 1 || page[0].ID != carol.ID {
		t.Errorf("ListUsers second page = %+v, want carol", page)
	}
	if page, _ := s.ListUsers(ctx, store.DefaultApp, store.UserQuery{Match: "AR"}); len(page) != 1 || page[0].ID != carol.ID {
		t.Errorf("ListUsers matching AR = %+v, want carol", page)
	}
	if page, _ := s.ListUsers(ctx, store.DefaultApp, store.UserQuery{Match: "%"}); len(page) != 0 {
		t.Errorf("ListUsers matching %% = %+v, want none (a literal %%)", page)
	}

	// Removing a message and its edit.
	p := store.PrivateConversationID(alice.ID, bob.ID)
	mustAppend(t, s, privateReq(alice, bob, "a1", "rude", at(3)), privateReq(bob, alice, "b1", "hi", at(4))) // seqs 1, 2
	mustAppend(t, s, changeReq(alice, p, store.KindEdit, 1, "a-e1", "ruder", at(5)))                         // seq 3
	recall, err := s.RemoveMessage(ctx, p, 1, at(6))
	if err != nil || recall.Seq != 4 || recall.Kind != store.KindRecall || recall.RefSeq != 1 || recall.SenderID != alice.ID ||
		recall.Event == nil || recall.Event.Type != store.RemovedByAdmin {
		t.Fatalf("RemoveMessage = %+v, %v", recall, err)
	}
	msgs, err := s.Messages(ctx, bob.ID, store.MessageQuery{ConversationID: p, Limit: 10})
	if err != nil || len(msgs) != 4 {
		t.Fatalf("history after the removal = %+v, %v", msgs, err)
	}
	if m := msgs[0]; !m.Recalled || m.Text != "" || m.Event == nil || m.Event.Type != store.RemovedByAdmin {
		t.Errorf("the removed message = %+v, want blank, recalled, removed by admin", m)
	}
	if msgs[2].Text != "" || msgs[1].Text != "hi" || msgs[3].Event == nil {
		t.Errorf("after the removal: edit %q, other %q, recall %+v", msgs[2].Text, msgs[1].Text, msgs[3])
	}
	_, err = s.RemoveMessage(ctx, p, 1, at(7))
	wantErr(t, "RemoveMessage again", err, store.ErrNotFound)
	_, err = s.RemoveMessage(ctx, p, 4, at(7))
	wantErr(t, "RemoveMessage of the recall", err, store.ErrNotFound)
	_, err = s.RemoveMessage(ctx, "p_0_99999", 1, at(7))
	wantErr(t, "RemoveMessage in no conversation", err, store.ErrNotFound)

	// Deleting bob, erasing his messages.
	if _, err := s.RequestFriend(ctx, carol.ID, bob.ID, at(8)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportFriendships(ctx, []store.Friendship{{UserID: alice.ID, FriendID: bob.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, bob.ID, true, at(9)); err != nil {
		t.Fatal(err)
	}
	_, err = s.UserByName(ctx, store.DefaultApp, "bob")
	wantErr(t, "UserByName of the deleted bob", err, store.ErrNotFound)
	if u, err := s.UserByID(ctx, bob.ID); err != nil || u.DeletedAt.IsZero() || u.DisabledAt.IsZero() || u.PasswordHash != "" || u.Username != "bob" {
		t.Errorf("UserByID of the deleted bob = %+v, %v", u, err)
	}
	if c, _ := s.Contacts(ctx, alice.ID); len(c.Friends) != 0 {
		t.Errorf("alice's friends after bob's deletion = %+v", c.Friends)
	}
	if c, _ := s.Contacts(ctx, carol.ID); len(c.Outgoing) != 0 {
		t.Errorf("carol's requests after bob's deletion = %+v", c.Outgoing)
	}
	msgs, _ = s.Messages(ctx, alice.ID, store.MessageQuery{ConversationID: p, Limit: 10})
	if m := msgs[1]; m.Text != "" || !m.Recalled {
		t.Errorf("bob's message after his erasure = %+v", m)
	}
	if page, _ := s.ListUsers(ctx, store.DefaultApp, store.UserQuery{}); len(page) != 2 {
		t.Errorf("ListUsers after bob's deletion = %+v, want alice and carol", page)
	}
	wantErr(t, "DeleteUser twice", s.DeleteUser(ctx, bob.ID, false, at(10)), store.ErrNotFound)
	if again, err := s.CreateUser(ctx, store.DefaultApp, "bob", "h"); err != nil || again.ID == bob.ID {
		t.Errorf("CreateUser(bob) after the deletion = %+v, %v; want a new bob", again, err)
	}
	// Keeping the messages: carol's stay.
	mustAppend(t, s, privateReq(carol, alice, "c1", "kept", at(11)))
	if err := s.DeleteUser(ctx, carol.ID, false, at(12)); err != nil {
		t.Fatal(err)
	}
	kept, _ := s.Messages(ctx, alice.ID, store.MessageQuery{ConversationID: store.PrivateConversationID(alice.ID, carol.ID), Limit: 10})
	if len(kept) != 1 || kept[0].Text != "kept" {
		t.Errorf("carol's messages, kept = %+v", kept)
	}
}
