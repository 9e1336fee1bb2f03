package client

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/faultproxy"
	"github.com/magpie-im/magpie/proto/wire"
)

// describe renders a message for comparisons: "seq:kind:sender:text" plus
// the event or referenced seq.
func describe(m Message) string {
	s := fmt.Sprintf("%d:%s:%s:%s", m.Seq, m.Kind, m.Sender, m.Text)
	if m.Event != nil {
		s += fmt.Sprintf(":%s%v", m.Event.Type, m.Event.Usernames)
	}
	if m.RefSeq != 0 {
		s += fmt.Sprintf(":ref%d", m.RefSeq)
	}
	return s
}

func (r *recorder) described() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		out = append(out, describe(m))
	}
	return out
}

func wantDescribed(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(rec.described()) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for messages\n%q\ngot\n%q", want, rec.described())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := rec.described(); !slices.Equal(got, want) {
		t.Fatalf("got messages\n%q\nwant\n%q", got, want)
	}
}

func TestGroupMessagesArriveInOrderWithEvents(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob", "carol", "dave")
	alice, arec := connect(t, srv, "alice")
	bob, _ := connect(t, srv, "bob")
	_, crec := connect(t, srv, "carol")
	// carol loses some live pushes; gap filling must restore the order.
	// (A lost push of the newest message waits for the next one or a sync.)
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		if seq := f.Env.GetMessage().GetSeq(); pushTo("carol", f) && (seq == 2 || seq == 4) {
			return faultproxy.Drop
		}
		return faultproxy.Pass
	})

	g, err := alice.CreateGroup(ctxT(t), NewGroup{Name: "team", Members: []string{"bob", "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	if !IsGroupID(g.ID) || g.Name != "team" || g.Owner != "alice" || len(g.Members) != 3 {
		t.Fatalf("CreateGroup: got %+v", g)
	}
	for _, text := range []string{"one", "two"} {
		if _, err := alice.SendGroup(ctxT(t), g.ID, text); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Send(ctxT(t), SendRequest{ToGroup: g.ID, Text: "three"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.AddMembers(ctxT(t), g.ID, "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendGroup(ctxT(t), g.ID, "four"); err != nil {
		t.Fatal(err)
	}
	wantDescribed(t, crec,
		"1:event:alice::created[bob carol]",
		"2:text:alice:one",
		"3:text:alice:two",
		"4:text:bob:three",
		"5:event:alice::added[dave]",
		"6:text:alice:four",
	)
	// alice sees the server's events and bob's message, not her own sends.
	wantDescribed(t, arec, "1:event:alice::created[bob carol]", "4:text:bob:three", "5:event:alice::added[dave]")
	crec.mu.Lock()
	m := crec.msgs[1]
	crec.mu.Unlock()
	if !m.IsGroup() || m.Peer != "" || m.ConversationID != g.ID {
		t.Fatalf("got %+v, want a group message of %s", m, g.ID)
	}

	// A non-member cannot send to the group.
	dave, _ := connect(t, srv, "dave")
	if err := dave.LeaveGroup(ctxT(t), g.ID); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if _, err := dave.SendGroup(ctxT(t), g.ID, "hi"); !errors.As(err, &e) || e.Code != wire.CodeNotMember {
		t.Fatalf("send after leaving: got %v, want not_member", err)
	}
}

func TestGroupAdministration(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob", "carol")
	alice, _ := connect(t, srv, "alice")
	bob, brec := connect(t, srv, "bob")
	ctx := ctxT(t)
	g, err := alice.CreateGroup(ctx, NewGroup{Name: "team", Members: []string{"bob", "carol"}, JoinPolicy: JoinInvite})
	if err != nil {
		t.Fatal(err)
	}
	name := "crew"
	if g, err = alice.UpdateGroup(ctx, g.ID, GroupUpdate{Name: &name}); err != nil || g.Name != "crew" {
		t.Fatalf("UpdateGroup: got %+v, %v", g, err)
	}
	if err := alice.SetRole(ctx, g.ID, "bob", RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := alice.SetRole(ctx, g.ID, "bob", RoleOwner); err == nil {
		t.Fatal("SetRole owner: got nil error, want bad_request")
	}
	if err := alice.RemoveMember(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := alice.LeaveGroup(ctx, g.ID); !errors.As(err, &e) || e.Code != wire.CodeConflict {
		t.Fatalf("the owner leaving: got %v, want conflict", err)
	}
	if err := alice.TransferOwner(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if g, err = bob.Group(ctx, g.ID); err != nil || g.Owner != "bob" {
		t.Fatalf("Group after transfer: got %+v, %v", g, err)
	}
	roles := map[string]Role{}
	for _, m := range g.Members {
		roles[m.Username] = m.Role
	}
	if want := map[string]Role{"alice": RoleAdmin, "bob": RoleOwner}; fmt.Sprint(roles) != fmt.Sprint(want) {
		t.Fatalf("roles %v, want %v", roles, want)
	}
	list, err := alice.Groups(ctx)
	if err != nil || len(list) != 1 || list[0].ID != g.ID || list[0].MemberCount != 2 || list[0].Members != nil {
		t.Fatalf("Groups: got %+v, %v", list, err)
	}
	wantDescribed(t, brec,
		"1:event:alice::created[bob carol]",
		"2:event:alice::updated[]",
		"3:event:alice::role[bob]",
		"4:event:alice::removed[carol]",
		"5:event:alice::owner[bob]",
	)
	brec.mu.Lock()
	ev := *brec.msgs[2].Event
	brec.mu.Unlock()
	if ev.Detail != "admin" || ev.Actor != "alice" || len(ev.UserIDs) != 1 {
		t.Fatalf("role event %+v", ev)
	}

	// Group read receipts: alice asks who read her message.
	ack, err := alice.SendGroup(ctx, g.ID, "read me")
	if err != nil {
		t.Fatal(err)
	}
	if err := bob.MarkRead(ctx, g.ID, ack.Seq); err != nil {
		t.Fatal(err)
	}
	r, err := alice.Reads(ctx, g.ID, ack.Seq)
	if err != nil || r.ReadCount != 1 || !slices.Equal(r.Readers, []string{"bob"}) || r.MemberCount != 1 { // the members other than the sender
		t.Fatalf("Reads: got %+v, %v", r, err)
	}
	if err := bob.DissolveGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
}
