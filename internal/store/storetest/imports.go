package storetest

import (
	"slices"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testImports: users are found by name within their app; imported
// friendships are mutual, drop pending requests and are new once; an
// imported group has its roles, its "created" event and nothing unread,
// and importing its external id again in the same app returns it, while
// another app gets a group of its own.
func testImports(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "Bob"), mustUser(t, s, "carol")
	acme, err := s.CreateApp(ctx, store.App{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	twin, err := s.CreateUser(ctx, acme.ID, "alice", "h")
	if err != nil {
		t.Fatal(err)
	}
	found, err := s.UsersByName(ctx, store.DefaultApp, []string{"ALICE", "bob", "nobody", "alice"})
	if err != nil || len(found) != 2 {
		t.Fatalf("UsersByName = %+v, %v; want alice and Bob", found, err)
	}
	ids := []int64{found[0].ID, found[1].ID}
	slices.Sort(ids)
	if ids[0] != alice.ID || ids[1] != bob.ID {
		t.Errorf("UsersByName found %v, want %d and %d", ids, alice.ID, bob.ID)
	}
	if got, err := s.UsersByName(ctx, acme.ID, []string{"alice", "bob"}); err != nil || len(got) != 1 || got[0].ID != twin.ID {
		t.Errorf("UsersByName in acme = %+v, %v; want acme's alice only", got, err)
	}

	if _, err := s.RequestFriend(ctx, carol.ID, alice.ID, at(1)); err != nil {
		t.Fatal(err)
	}
	pairs := []store.Friendship{{UserID: alice.ID, FriendID: bob.ID, Since: at(2)}, {UserID: carol.ID, FriendID: alice.ID, Since: at(2)}, {UserID: bob.ID, FriendID: alice.ID}}
	created, err := s.ImportFriendships(ctx, pairs)
	if err != nil || !slices.Equal(created, []bool{true, true, false}) {
		t.Fatalf("ImportFriendships = %v, %v; want new, new, and the first pair again not new", created, err)
	}
	c, err := s.Contacts(ctx, alice.ID)
	if err != nil || len(c.Friends) != 2 || len(c.Incoming) != 0 {
		t.Errorf("alice's contacts after the import = %+v, %v; want bob and carol as friends, carol's request gone", c, err)
	}
	if c, _ := s.Contacts(ctx, bob.ID); len(c.Friends) != 1 || c.Friends[0].UserID != alice.ID {
		t.Errorf("bob's friends = %+v; want alice (friendships are mutual)", c.Friends)
	}
	if again, err := s.ImportFriendships(ctx, pairs[:2]); err != nil || slices.Contains(again, true) {
		t.Errorf("ImportFriendships again = %v, %v; want nothing new", again, err)
	}

	g := store.ImportGroup{ExternalID: "team-7", Name: "team", OwnerID: bob.ID, At: at(3),
		Members: []store.ImportMember{{UserID: alice.ID, Role: store.RoleAdmin}, {UserID: carol.ID, Role: store.RoleMember}},
		Event:   store.Event{Type: "created", ActorID: bob.ID, Actor: "Bob", Detail: "team"}}
	res, err := s.ImportGroups(ctx, store.DefaultApp, []store.ImportGroup{g})
	if err != nil || len(res) != 1 || res[0].Existing || res[0].GroupID == "" {
		t.Fatalf("ImportGroups = %+v, %v", res, err)
	}
	info, err := s.Group(ctx, res[0].GroupID)
	if err != nil || info.Name != "team" || info.OwnerID != bob.ID || info.JoinPolicy != store.JoinInvite || len(info.Members) != 3 {
		t.Fatalf("the imported group = %+v, %v", info, err)
	}
	roles := map[int64]store.Role{}
	for _, m := range info.Members {
		roles[m.UserID] = m.Role
	}
	if roles[bob.ID] != store.RoleOwner || roles[alice.ID] != store.RoleAdmin || roles[carol.ID] != store.RoleMember {
		t.Errorf("imported roles = %v", roles)
	}
	conv, err := s.Conversation(ctx, carol.ID, res[0].GroupID)
	if err != nil || conv.LastSeq != 1 || conv.Unread() != 0 {
		t.Errorf("carol's view of the imported group = %+v, %v; want the created event only, read", conv, err)
	}
	again, err := s.ImportGroups(ctx, store.DefaultApp, []store.ImportGroup{g})
	if err != nil || len(again) != 1 || !again[0].Existing || again[0].GroupID != res[0].GroupID {
		t.Errorf("ImportGroups again = %+v, %v; want the same group, existing", again, err)
	}
	other := store.ImportGroup{ExternalID: "team-7", Name: "acme team", OwnerID: twin.ID, Event: store.Event{Type: "created"}}
	if res2, err := s.ImportGroups(ctx, acme.ID, []store.ImportGroup{other}); err != nil || res2[0].Existing || res2[0].GroupID == res[0].GroupID {
		t.Errorf("the same external id in acme = %+v, %v; want a group of its own", res2, err)
	}
	bad := store.ImportGroup{ExternalID: "ghost", Name: "x", OwnerID: bob.ID, Members: []store.ImportMember{{UserID: 99999, Role: store.RoleMember}}}
	_, err = s.ImportGroups(ctx, store.DefaultApp, []store.ImportGroup{bad})
	wantErr(t, "ImportGroups with an unknown member", err, store.ErrNotFound)
	if gs, _ := s.UserGroups(ctx, bob.ID); len(gs) != 1 {
		t.Errorf("bob's groups = %+v; want the one imported group (the failed import left nothing)", gs)
	}
}
