package storetest

import (
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testFriendPolicy: anyone makes friends at once, nobody refuses, and a
// request answering the other's own request makes friends whatever the
// policy.
func testFriendPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	if c, err := s.Contacts(ctx, bob.ID); err != nil || c.Policy != store.FriendApprove {
		t.Fatalf("bob's default policy = %q, %v; want approve", c.Policy, err)
	}
	if err := s.SetFriendPolicy(ctx, bob.ID, store.FriendAnyone); err != nil {
		t.Fatal(err)
	}
	if st, err := s.RequestFriend(ctx, alice.ID, bob.ID, at(1)); err != nil || st != store.FriendsNow {
		t.Fatalf("request to anyone: %v, %v; want friends", st, err)
	}
	if c, _ := s.Contacts(ctx, bob.ID); len(c.Friends) != 1 || len(c.Incoming) != 0 || c.Policy != store.FriendAnyone {
		t.Errorf("bob's contacts = %+v; want alice as a friend, no request", c)
	}
	if err := s.SetFriendPolicy(ctx, carol.ID, store.FriendNobody); err != nil {
		t.Fatal(err)
	}
	_, err := s.RequestFriend(ctx, alice.ID, carol.ID, at(2))
	wantErr(t, "request to nobody", err, store.ErrForbidden)
	if c, _ := s.Contacts(ctx, carol.ID); len(c.Incoming) != 0 {
		t.Errorf("a refused request was kept: %+v", c.Incoming)
	}
	if st, err := s.RequestFriend(ctx, carol.ID, alice.ID, at(3)); err != nil || st != store.FriendRequested {
		t.Fatalf("carol asks alice: %v, %v", st, err)
	}
	if st, err := s.RequestFriend(ctx, alice.ID, carol.ID, at(4)); err != nil || st != store.FriendsNow {
		t.Errorf("answering carol's own request: %v, %v; want friends", st, err)
	}
	wantErr(t, "policy of nobody", s.SetFriendPolicy(ctx, carol.ID+1000, store.FriendAnyone), store.ErrNotFound)
}

// testFriendInfo: a remark and group are the user's own, kept per friend,
// and dropped with the friendship.
func testFriendInfo(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	befriendNow(t, s, alice, bob)
	remark, group := "Bobby", "work"
	c, err := s.SetFriendInfo(ctx, alice.ID, bob.ID, &remark, &group)
	if err != nil || c.Remark != "Bobby" || c.Group != "work" || c.Username != "bob" {
		t.Fatalf("SetFriendInfo = %+v, %v", c, err)
	}
	other := "college"
	if c, err = s.SetFriendInfo(ctx, alice.ID, bob.ID, nil, &other); err != nil || c.Remark != "Bobby" || c.Group != "college" {
		t.Errorf("group only: %+v, %v; want the remark kept", c, err)
	}
	if cs, _ := s.Contacts(ctx, bob.ID); len(cs.Friends) != 1 || cs.Friends[0].Remark != "" || cs.Friends[0].Group != "" {
		t.Errorf("bob's view of alice = %+v; alice's remark is hers only", cs.Friends)
	}
	if cs, _ := s.Contacts(ctx, alice.ID); len(cs.Friends) != 1 || cs.Friends[0].Remark != "Bobby" {
		t.Errorf("alice's friends = %+v", cs.Friends)
	}
	_, err = s.SetFriendInfo(ctx, alice.ID, carol.ID, &remark, nil)
	wantErr(t, "remark on a stranger", err, store.ErrNotFound)
	if err := s.RemoveFriend(ctx, alice.ID, bob.ID); err != nil {
		t.Fatal(err)
	}
	befriendNow(t, s, alice, bob)
	if cs, _ := s.Contacts(ctx, alice.ID); len(cs.Friends) != 1 || cs.Friends[0].Remark != "" || cs.Friends[0].Group != "" {
		t.Errorf("after a new friendship alice's friends = %+v; want no old remark", cs.Friends)
	}
}

// testFriendChanges: each change takes the user's next friend seq, and a
// sync after a seq lists each friend changed since, once, with the ends.
func testFriendChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
	if ch, seq, err := s.FriendChanges(ctx, alice.ID, 0, 100); err != nil || len(ch) != 0 || seq != 0 {
		t.Fatalf("no friends yet: %+v, %d, %v", ch, seq, err)
	}
	befriendNow(t, s, alice, bob)   // alice 1
	befriendNow(t, s, alice, carol) // alice 2
	ch, seq, err := s.FriendChanges(ctx, alice.ID, 0, 100)
	if err != nil || seq != 2 || len(ch) != 2 || ch[0].Username != "bob" || ch[0].Seq != 1 || ch[1].Username != "carol" || ch[1].Seq != 2 {
		t.Fatalf("alice's changes = %+v, seq %d, %v; want bob 1, carol 2", ch, seq, err)
	}
	remark := "B"
	if _, err := s.SetFriendInfo(ctx, alice.ID, bob.ID, &remark, nil); err != nil { // alice 3
		t.Fatal(err)
	}
	if err := s.RemoveFriend(ctx, carol.ID, alice.ID); err != nil { // alice 4
		t.Fatal(err)
	}
	befriendNow(t, s, alice, dave) // alice 5
	ch, seq, err = s.FriendChanges(ctx, alice.ID, 2, 100)
	if err != nil || seq != 5 || len(ch) != 3 {
		t.Fatalf("changes after 2 = %+v, seq %d, %v; want bob, carol removed, dave", ch, seq, err)
	}
	if ch[0].Username != "bob" || ch[0].Remark != "B" || ch[0].Seq != 3 || ch[0].Removed {
		t.Errorf("first change = %+v; want bob's remark at 3", ch[0])
	}
	if ch[1].Username != "carol" || !ch[1].Removed || ch[1].Seq != 4 {
		t.Errorf("second change = %+v; want carol removed at 4", ch[1])
	}
	if ch[2].Username != "dave" || ch[2].Removed || ch[2].Seq != 5 {
		t.Errorf("third change = %+v; want dave at 5", ch[2])
	}
	if page, _, _ := s.FriendChanges(ctx, alice.ID, 2, 2); len(page) != 2 || page[1].Seq != 4 {
		t.Errorf("a page of 2 after 2 = %+v", page)
	}
	if ch, _, _ := s.FriendChanges(ctx, carol.ID, 0, 100); len(ch) != 1 || !ch[0].Removed || ch[0].Username != "alice" {
		t.Errorf("carol's changes = %+v; want alice removed", ch)
	}
	befriendNow(t, s, alice, carol) // alice 6: the removal is replaced
	if ch, _, _ := s.FriendChanges(ctx, alice.ID, 0, 100); len(ch) != 3 || ch[2].Username != "carol" || ch[2].Removed || ch[2].Seq != 6 {
		t.Errorf("after befriending carol again = %+v", ch)
	}
	// A deleted user's friends see the friendship end.
	if err := s.DeleteUser(ctx, dave.ID, false, at(9)); err != nil {
		t.Fatal(err)
	}
	ch, seq, _ = s.FriendChanges(ctx, alice.ID, 6, 100)
	if len(ch) != 1 || !ch[0].Removed || ch[0].UserID != dave.ID || seq != 7 {
		t.Errorf("after dave's deletion = %+v, seq %d; want dave removed at 7", ch, seq)
	}
	// An imported friendship counts as a change too.
	if _, err := s.ImportFriendships(ctx, []store.Friendship{{UserID: bob.ID, FriendID: carol.ID}}); err != nil {
		t.Fatal(err)
	}
	if ch, seq, _ := s.FriendChanges(ctx, carol.ID, 0, 100); seq == 0 || len(ch) != 2 || ch[len(ch)-1].Username != "bob" {
		t.Errorf("carol's changes after an import = %+v, seq %d", ch, seq)
	}
}

func befriendNow(t *testing.T, s store.Store, a, b store.User) {
	t.Helper()
	if _, err := s.RequestFriend(t.Context(), a.ID, b.ID, at(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptFriend(t.Context(), b.ID, a.ID, at(1)); err != nil {
		t.Fatal(err)
	}
}
