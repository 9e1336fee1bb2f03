package storetest

import (
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testGroupJoinRequests: in a group of policy approval a join is a
// request, which the owner or an admin approves (within the limits) or
// rejects; a plain member can do neither.
func testGroupJoinRequests(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
	g := mustGroup(t, s, 0, alice, bob)
	approval := store.JoinApproval
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpUpdate, JoinPolicy: &approval}); err != nil {
		t.Fatal(err)
	}
	for range 2 { // asking twice is one request
		res, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: carol.ID, Op: store.OpJoin})
		if err != nil || !res.Requested || res.Event != nil || res.Group.MemberCount != 2 {
			t.Fatalf("carol asks to join: %+v, %v; want a request and no change", res, err)
		}
	}
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: dave.ID, Op: store.OpJoin}); err != nil {
		t.Fatal(err)
	}
	reqs, err := s.JoinRequests(ctx, g.ID)
	if err != nil || len(reqs) != 2 || reqs[0].Username != "carol" || reqs[1].Username != "dave" {
		t.Fatalf("requests = %+v, %v; want carol and dave", reqs, err)
	}
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpApprove, Targets: []int64{carol.ID}})
	wantErr(t, "a member approves", err, store.ErrForbidden)
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpAdd, Targets: []int64{carol.ID}})
	wantErr(t, "a member adds to an approval group", err, store.ErrForbidden)
	res, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpApprove, Targets: []int64{carol.ID}, MaxSize: 3})
	if err != nil || res.Event == nil || res.Group.MemberCount != 3 {
		t.Fatalf("alice approves carol: %+v, %v", res, err)
	}
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpApprove, Targets: []int64{dave.ID}, MaxSize: 3})
	wantErr(t, "approve over the max size", err, store.ErrGroupFull)
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpReject, Targets: []int64{dave.ID}}); err != nil {
		t.Fatal(err)
	}
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpReject, Targets: []int64{dave.ID}})
	wantErr(t, "reject twice", err, store.ErrNotFound)
	if reqs, _ := s.JoinRequests(ctx, g.ID); len(reqs) != 0 {
		t.Errorf("requests left = %+v", reqs)
	}
}

// testGroupProfile: intro, notice, avatar and the group's own member
// limit, which is kept below the server's and never below the count.
func testGroupProfile(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	_, _, err := s.CreateGroup(t.Context(), store.NewGroup{Name: "x", OwnerID: alice.ID, MemberIDs: []int64{bob.ID, carol.ID}, MaxMembers: 2})
	wantErr(t, "create over the group's own limit", err, store.ErrGroupFull)
	g, _, err := s.CreateGroup(t.Context(), store.NewGroup{Name: "x", OwnerID: alice.ID, MemberIDs: []int64{bob.ID},
		MaxMembers: 2, Intro: "about us", AvatarURL: "https://a.test/x.png", At: at(0)})
	if err != nil || g.Intro != "about us" || g.AvatarURL != "https://a.test/x.png" || g.MaxMembers != 2 {
		t.Fatalf("CreateGroup = %+v, %v", g, err)
	}
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{carol.ID}, MaxSize: 100})
	wantErr(t, "add over the group's own limit", err, store.ErrGroupFull)
	one := 1
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpUpdate, MaxMembers: &one})
	wantErr(t, "limit below the count", err, store.ErrGroupFull)
	notice, three := "meet at 9", 3
	res, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpUpdate, Notice: &notice, MaxMembers: &three})
	if err != nil || res.Group.Notice != "meet at 9" || res.Group.Intro != "about us" || res.Group.MaxMembers != 3 {
		t.Fatalf("update = %+v, %v", res.Group, err)
	}
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpUpdate, Notice: &notice})
	wantErr(t, "a member sets the notice", err, store.ErrForbidden)
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{carol.ID}, MaxSize: 100}); err != nil {
		t.Errorf("add within the raised limit: %v", err)
	}
	if gs, _ := s.UserGroups(t.Context(), bob.ID); len(gs) != 1 || gs[0].Notice != "meet at 9" || gs[0].MaxMembers != 3 {
		t.Errorf("bob's groups = %+v", gs)
	}
}

// testGroupChanges: a user's group sync lists the groups that changed
// after a version, each once at its last change, and the groups the user
// left at the change that ended the membership, not later ones.
func testGroupChanges(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	_, v0, err := s.GroupChanges(ctx, bob.ID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	g1 := mustGroup(t, s, 0, alice, bob)
	g2 := mustGroup(t, s, 0, alice, bob, carol)
	ch, v, err := s.GroupChanges(ctx, bob.ID, v0, 100)
	if err != nil || len(ch) != 2 || ch[0].Group.ID != g1.ID || ch[1].Group.ID != g2.ID || v != ch[1].Version || ch[0].Left {
		t.Fatalf("bob's changes = %+v, %d, %v; want g1 then g2", ch, v, err)
	}
	name := "renamed"
	if _, err := change(t, s, store.GroupChange{GroupID: g1.ID, ActorID: alice.ID, Op: store.OpUpdate, Name: &name}); err != nil {
		t.Fatal(err)
	}
	if _, err := change(t, s, store.GroupChange{GroupID: g2.ID, ActorID: bob.ID, Op: store.OpLeave}); err != nil {
		t.Fatal(err)
	}
	ch2, v2, _ := s.GroupChanges(ctx, bob.ID, v, 100)
	if len(ch2) != 2 || ch2[0].Group.ID != g1.ID || ch2[0].Group.Name != "renamed" || ch2[1].Group.ID != g2.ID || !ch2[1].Left {
		t.Fatalf("after a rename and a leave = %+v; want g1 renamed, g2 left", ch2)
	}
	// Later changes of g2 are not bob's any more; carol still sees them.
	if _, err := change(t, s, store.GroupChange{GroupID: g2.ID, ActorID: alice.ID, Op: store.OpUpdate, Name: &name}); err != nil {
		t.Fatal(err)
	}
	if ch3, _, _ := s.GroupChanges(ctx, bob.ID, v2, 100); len(ch3) != 0 {
		t.Errorf("bob after g2 changed without him = %+v; want nothing", ch3)
	}
	if ch3, _, _ := s.GroupChanges(ctx, carol.ID, v2, 100); len(ch3) != 1 || ch3[0].Group.Name != "renamed" {
		t.Errorf("carol = %+v; want g2 renamed", ch3)
	}
	if page, _, _ := s.GroupChanges(ctx, bob.ID, v0, 1); len(page) != 1 {
		t.Errorf("a page of one = %+v", page)
	}
	gone, err := change(t, s, store.GroupChange{GroupID: g1.ID, ActorID: alice.ID, Op: store.OpDissolve})
	if err != nil {
		t.Fatal(err)
	}
	if ch4, _, _ := s.GroupChanges(ctx, bob.ID, v2, 100); len(ch4) != 1 || !ch4[0].Left || !ch4[0].Group.Dissolved || gone.Group.Version != ch4[0].Version {
		t.Errorf("after g1 dissolved = %+v", ch4)
	}
}
