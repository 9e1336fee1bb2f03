package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

func mustGroup(t *testing.T, s store.Store, max int, owner store.User, members ...store.User) store.GroupInfo {
	t.Helper()
	var ids []int64
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	g, ev, err := s.CreateGroup(t.Context(), store.NewGroup{Name: "team", OwnerID: owner.ID, MemberIDs: ids, MaxSize: max,
		Event: store.Event{Type: "created", ActorID: owner.ID, Actor: owner.Username, UserIDs: ids}, At: at(0)})
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	if ev.Seq != 1 || ev.Kind != store.KindEvent || ev.Event == nil || ev.Event.Type != "created" {
		t.Fatalf("created event = %+v, want seq 1 of kind EVENT", ev)
	}
	return g
}

func groupReq(from store.User, g string, cmid, text string, sentAt time.Time) store.AppendRequest {
	return store.AppendRequest{ConversationID: g, SenderID: from.ID, ClientMsgID: cmid, Text: text, SentAt: sentAt}
}

// change runs one group change and returns its result and error.
func change(t *testing.T, s store.Store, c store.GroupChange) (store.GroupChangeResult, error) {
	t.Helper()
	if c.Event.Type == "" {
		c.Event = store.Event{Type: "test", ActorID: c.ActorID}
	}
	if c.At.IsZero() {
		c.At = at(1)
	}
	return s.ChangeGroup(t.Context(), c)
}

func appendOne(t *testing.T, s store.Store, r store.AppendRequest) store.AppendResult {
	t.Helper()
	res, err := s.AppendMessages(t.Context(), []store.AppendRequest{r})
	if err != nil || len(res) != 1 {
		t.Fatalf("AppendMessages: %v (%d results)", err, len(res))
	}
	return res[0]
}

func seqs(msgs []store.Message) []uint64 {
	var out []uint64
	for _, m := range msgs {
		out = append(out, m.Seq)
	}
	return out
}

func testGroupCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	g := mustGroup(t, s, 0, alice, bob, carol, alice)
	if g.Owner != "alice" || g.MemberCount != 3 || len(g.Members) != 3 || g.JoinPolicy != store.JoinInvite || g.Name != "team" {
		t.Fatalf("group = %+v, want alice's invite-only team of 3", g)
	}
	roles := map[string]store.Role{}
	for _, m := range g.Members {
		roles[m.Username] = m.Role
	}
	if roles["alice"] != store.RoleOwner || roles["bob"] != store.RoleMember || roles["carol"] != store.RoleMember {
		t.Errorf("roles = %v", roles)
	}
	list, err := s.UserGroups(ctx, bob.ID)
	if err != nil || len(list) != 1 || list[0].ID != g.ID || list[0].MemberCount != 3 || list[0].Owner != "alice" {
		t.Fatalf("UserGroups(bob) = %+v, %v", list, err)
	}
	c, err := s.Conversation(ctx, carol.ID, g.ID)
	if err != nil || c.Kind != store.Group || c.Name != "team" || c.LastSeq != 1 || c.Unread() != 0 {
		t.Fatalf("carol's conversation = %+v, %v; want the group with its created event read", c, err)
	}
	_, _, err = s.CreateGroup(ctx, store.NewGroup{Name: "x", OwnerID: alice.ID, MemberIDs: []int64{bob.ID + 1000}})
	wantErr(t, "CreateGroup with an unknown user", err, store.ErrNotFound)
	_, err = s.Group(ctx, "g_999999")
	wantErr(t, "Group(unknown)", err, store.ErrNotFound)
}

func testGroupWindow(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
	g := mustGroup(t, s, 0, alice, bob, carol)
	res := mustAppend(t, s, groupReq(alice, g.ID, "a1", "hello", at(2)), groupReq(bob, g.ID, "b1", "hi", at(3)))
	if res[0].Message.Seq != 2 || res[1].Message.Seq != 3 {
		t.Fatalf("group seqs = %d, %d; want 2, 3", res[0].Message.Seq, res[1].Message.Seq)
	}
	wantErr(t, "send by a non-member", appendOne(t, s, groupReq(dave, g.ID, "d1", "let me in", at(4))).Err, store.ErrNotMember)

	added, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{dave.ID, bob.ID},
		Event: store.Event{Type: "added", ActorID: alice.ID, UserIDs: []int64{dave.ID, bob.ID}, Usernames: []string{"dave", "bob"}}})
	if err != nil || added.Event == nil || added.Event.Seq != 4 || added.Group.MemberCount != 4 {
		t.Fatalf("add dave: %+v, %v; want event seq 4 and 4 members", added, err)
	}
	if ev := added.Event.Event; !slices.Equal(ev.UserIDs, []int64{dave.ID}) || !slices.Equal(ev.Usernames, []string{"dave"}) {
		t.Errorf("add event = %+v, want only dave (bob already was a member)", ev)
	}
	again, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{dave.ID}})
	if err != nil || again.Event != nil {
		t.Errorf("adding a member again: event %+v, %v; want no event", again.Event, err)
	}
	mustAppend(t, s, groupReq(dave, g.ID, "d2", "thanks", at(5))) // seq 5

	// Dave's window starts at his join event, with nothing unread.
	if got := seqs(readAll(t, s, dave.ID, g.ID)); !slices.Equal(got, []uint64{4, 5}) {
		t.Errorf("dave's history = %v, want [4 5]", got)
	}
	dc, err := s.Conversation(ctx, dave.ID, g.ID)
	if err != nil || dc.ReadSeq != 5 || dc.Unread() != 0 {
		t.Errorf("dave's conversation = %+v, %v; want read up to 5", dc, err)
	}
	bc, _ := s.Conversation(ctx, bob.ID, g.ID)
	if bc.Unread() != 2 { // the add event and dave's message
		t.Errorf("bob's unread = %d, want 2", bc.Unread())
	}

	removed, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpRemove, Targets: []int64{carol.ID}})
	if err != nil || removed.Event.Seq != 6 || !slices.Equal(removed.Former, []int64{carol.ID}) {
		t.Fatalf("remove carol: %+v, %v", removed, err)
	}
	mustAppend(t, s, groupReq(alice, g.ID, "a2", "after carol", at(7))) // seq 7
	if got := seqs(readAll(t, s, carol.ID, g.ID)); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("carol's history = %v, want up to her removal (6)", got)
	}
	wantErr(t, "send after removal", appendOne(t, s, groupReq(carol, g.ID, "c1", "hey", at(8))).Err, store.ErrNotMember)
	w, err := s.MemberWindow(ctx, carol.ID, g.ID)
	if err != nil || !w.Left || w.LeftSeq != 6 || w.JoinedSeq != 0 {
		t.Errorf("carol's window = %+v, %v; want 0..6, left", w, err)
	}
	if cs, _ := s.Conversations(ctx, carol.ID); len(cs) != 0 {
		t.Errorf("carol still lists %d conversations", len(cs))
	}
	_, err = s.MemberWindow(ctx, dave.ID+1000, g.ID)
	wantErr(t, "MemberWindow of a stranger", err, store.ErrNotMember)
}

func testGroupRoles(t *testing.T, s store.Store) {
	alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
	g := mustGroup(t, s, 0, alice, bob, carol)
	op := func(actor store.User, o store.GroupOp, target store.User, role store.Role) error {
		_, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: actor.ID, Op: o, Targets: []int64{target.ID}, Role: role})
		return err
	}
	steps := []struct {
		name string
		err  error
		want error
	}{
		{"member adds in an invite group", op(bob, store.OpAdd, dave, ""), store.ErrForbidden},
		{"member promotes self", op(bob, store.OpSetRole, bob, store.RoleAdmin), store.ErrForbidden},
		{"owner demotes self", op(alice, store.OpSetRole, alice, store.RoleMember), store.ErrForbidden},
		{"role owner by set-role", op(alice, store.OpSetRole, bob, store.RoleOwner), store.ErrForbidden},
		{"owner makes bob admin", op(alice, store.OpSetRole, bob, store.RoleAdmin), nil},
		{"admin removes the owner", op(bob, store.OpRemove, alice, ""), store.ErrForbidden},
		{"admin makes self owner", op(bob, store.OpTransfer, bob, ""), store.ErrForbidden},
		{"owner leaves", func() error {
			_, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpLeave})
			return err
		}(), store.ErrLastOwner},
		{"owner removes self", op(alice, store.OpRemove, alice, ""), store.ErrLastOwner},
		{"member removes member", op(carol, store.OpRemove, bob, ""), store.ErrForbidden},
		{"admin adds dave", op(bob, store.OpAdd, dave, ""), nil},
		{"admin removes dave", op(bob, store.OpRemove, dave, ""), nil},
		{"remove a non-member", op(alice, store.OpRemove, dave, ""), store.ErrNotFound},
		{"non-member acts", op(dave, store.OpAdd, dave, ""), store.ErrNotMember},
		{"owner transfers to carol", op(alice, store.OpTransfer, carol, ""), nil},
		{"old owner leaves", func() error {
			_, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpLeave})
			return err
		}(), nil},
	}
	for _, st := range steps {
		if st.want == nil && st.err != nil || st.want != nil && !errors.Is(st.err, st.want) {
			t.Errorf("%s: got %v, want %v", st.name, st.err, st.want)
		}
	}
	got, err := s.Group(t.Context(), g.ID)
	if err != nil || got.Owner != "carol" || got.MemberCount != 2 {
		t.Fatalf("group after the steps = %+v, %v; want carol's, with bob", got, err)
	}
}

func testGroupMute(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	g := mustGroup(t, s, 0, alice, bob, carol)
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpMute, Targets: []int64{carol.ID}, Until: at(100)}); err != nil {
		t.Fatal(err)
	}
	var me *rules.Refusal
	res := appendOne(t, s, groupReq(carol, g.ID, "c1", "x", at(50)))
	if !errors.As(res.Err, &me) || !me.Until.Equal(at(100)) || me.Reason != rules.Muted || !errors.Is(res.Err, store.ErrMuted) {
		t.Errorf("muted send: %v, want muted until %v", res.Err, at(100))
	}
	if res := appendOne(t, s, groupReq(carol, g.ID, "c2", "x", at(101))); res.Err != nil {
		t.Errorf("send after the mute ended: %v", res.Err)
	}
	until := at(200)
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpUpdate, MutedUntil: &until}); err != nil {
		t.Fatal(err)
	}
	res = appendOne(t, s, groupReq(bob, g.ID, "b1", "x", at(150)))
	if !errors.As(res.Err, &me) || me.Reason != rules.GroupMuted {
		t.Errorf("send while everyone is muted: %v, want muted (all)", res.Err)
	}
	if res := appendOne(t, s, groupReq(alice, g.ID, "a1", "x", at(150))); res.Err != nil {
		t.Errorf("the owner speaks while everyone is muted: %v", res.Err)
	}
	_, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpMute, Targets: []int64{carol.ID}, Until: at(300)})
	wantErr(t, "member mutes member", err, store.ErrForbidden)
}

func testGroupSizeAndPolicy(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
	_, _, err := s.CreateGroup(ctx, store.NewGroup{Name: "big", OwnerID: alice.ID, MemberIDs: []int64{bob.ID, carol.ID, dave.ID}, MaxSize: 3})
	wantErr(t, "create over the max size", err, store.ErrGroupFull)
	g := mustGroup(t, s, 3, alice, bob, carol)
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{dave.ID}, MaxSize: 3})
	wantErr(t, "add over the max size", err, store.ErrGroupFull)
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: dave.ID, Op: store.OpJoin})
	wantErr(t, "join an invite-only group", err, store.ErrForbidden)

	open := store.JoinOpen
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpUpdate, JoinPolicy: &open}); err != nil {
		t.Fatal(err)
	}
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: carol.ID, Op: store.OpLeave}); err != nil {
		t.Fatal(err)
	}
	joined, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: dave.ID, Op: store.OpJoin})
	if err != nil || joined.Event == nil || joined.Group.MemberCount != 3 {
		t.Fatalf("dave joins the open group: %+v, %v", joined, err)
	}

	// Dissolving ends every membership; former members keep their history.
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpDissolve})
	wantErr(t, "member dissolves", err, store.ErrForbidden)
	gone, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpDissolve})
	if err != nil || !gone.Group.Dissolved || len(gone.Former) != 3 || gone.Group.MemberCount != 0 {
		t.Fatalf("dissolve: %+v, %v", gone, err)
	}
	wantErr(t, "send after dissolve", appendOne(t, s, groupReq(alice, g.ID, "a1", "x", at(9))).Err, store.ErrNotMember)
	_, err = change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{bob.ID}})
	wantErr(t, "change a dissolved group", err, store.ErrNotFound)
	if msgs := readAll(t, s, bob.ID, g.ID); len(msgs) == 0 || msgs[len(msgs)-1].Seq != gone.Event.Seq {
		t.Errorf("bob's history after dissolve ends at %v, want the dissolve event %d", seqs(msgs), gone.Event.Seq)
	}
}

func testMessageReads(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
	g := mustGroup(t, s, 0, alice, bob, carol)
	mustAppend(t, s, groupReq(alice, g.ID, "a1", "read me", at(2))) // seq 2
	if _, err := s.MoveCursor(ctx, bob.ID, g.ID, store.Read, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{dave.ID}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.MessageReads(ctx, alice.ID, g.ID, 2)
	if err != nil || r.MemberCount != 2 || !slices.Equal(r.Readers, []int64{bob.ID}) {
		t.Fatalf("reads = %+v, %v; want bob of 2 (not the sender, not dave who joined later)", r, err)
	}
	_, err = s.MessageReads(ctx, dave.ID, g.ID, 2)
	wantErr(t, "reads before dave joined", err, store.ErrNotMember)
	_, err = s.MessageReads(ctx, alice.ID, g.ID, 99)
	wantErr(t, "reads of a missing message", err, store.ErrNotFound)
}

// testGroupConcurrent races sends against membership changes in one group:
// seqs stay gap-free, every change has its event, and no send by a member
// who is out at that moment is stored.
func testGroupConcurrent(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	g := mustGroup(t, s, 0, alice, bob)
	const senders, each, flips = 3, 20, 10
	errs := make(chan error, senders+1)
	var wg sync.WaitGroup
	for w := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := groupReq(alice, g.ID, fmt.Sprintf("w%d-%d", w, i), "x", at(2))
				if w == 1 {
					r.SenderID = carol.ID // in and out of the group
				}
				res, err := s.AppendMessages(t.Context(), []store.AppendRequest{r})
				if err == nil && res[0].Err != nil && !errors.Is(res[0].Err, store.ErrNotMember) {
					err = res[0].Err
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range flips {
			op, who := store.OpAdd, []int64{carol.ID}
			if i%2 == 1 {
				op = store.OpRemove
			}
			if _, err := s.ChangeGroup(t.Context(), store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: op, Targets: who,
				Event: store.Event{Type: "flip", ActorID: alice.ID}, At: at(2)}); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent group traffic: %v", err)
	}
	msgs := readAll(t, s, alice.ID, g.ID)
	events, carols := 0, 0
	in := false // whether carol is a member at this point of the stream
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("seq %d at position %d: not gap-free", m.Seq, i)
		}
		switch {
		case m.Kind == store.KindEvent && m.Event.Type == "flip":
			events++
			in = !in
		case m.SenderID == carol.ID:
			carols++
			if !in {
				t.Errorf("carol's message %d was stored while she was out", m.Seq)
			}
		}
	}
	if events != flips || len(msgs) != 1+flips+(senders-1)*each+carols {
		t.Errorf("%d messages with %d flip events and %d of carol's; want %d events and the rest sends", len(msgs), events, carols, flips)
	}
}

// testGroupRejoin: a member who left and came back reads both stays, and
// nothing from while they were away, in either direction of paging.
func testGroupRejoin(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	g := mustGroup(t, s, 0, alice, bob)                           // seq 1
	mustAppend(t, s, groupReq(alice, g.ID, "a1", "first", at(2))) // 2
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpRemove, Targets: []int64{bob.ID}}); err != nil {
		t.Fatal(err) // 3
	}
	mustAppend(t, s, groupReq(alice, g.ID, "a2", "while away", at(4))) // 4
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{bob.ID}}); err != nil {
		t.Fatal(err) // 5
	}
	mustAppend(t, s, groupReq(alice, g.ID, "a3", "welcome back", at(6))) // 6
	if got := seqs(readAll(t, s, bob.ID, g.ID)); !slices.Equal(got, []uint64{1, 2, 3, 5, 6}) {
		t.Errorf("bob's history = %v, want [1 2 3 5 6] (both stays, not 4)", got)
	}
	latest, err := s.Messages(t.Context(), bob.ID, store.MessageQuery{ConversationID: g.ID, BeforeSeq: 7, Limit: 3})
	if err != nil || !slices.Equal(seqs(latest), []uint64{3, 5, 6}) {
		t.Errorf("bob's latest 3 = %v, %v; want [3 5 6]", seqs(latest), err)
	}
	after, err := s.Messages(t.Context(), bob.ID, store.MessageQuery{ConversationID: g.ID, AfterSeq: 2, Limit: 10})
	if err != nil || !slices.Equal(seqs(after), []uint64{3, 5, 6}) {
		t.Errorf("bob's history after 2 = %v, %v; want [3 5 6]", seqs(after), err)
	}
}
