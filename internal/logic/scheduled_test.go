package logic

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// texts is the conversation as alice sees it.
func historyTexts(t *testing.T, s *Service, id Identity, conv string) []string {
	t.Helper()
	msgs, _, err := s.History(context.Background(), id, store.MessageQuery{ConversationID: conv, BeforeSeq: math.MaxInt64, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, m := range msgs {
		out = append(out, m.Text)
	}
	return out
}

func TestScheduledMessages(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.ScheduleHorizon = time.Hour })
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	carol := login(t, s, "carol", "", "").Identity
	conv := store.PrivateConversationID(alice.UserID, bob.UserID)

	soon := time.Now().Add(1500 * time.Millisecond)
	ack, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "later", ClientMsgID: "sch-1", SendAt: soon})
	if err != nil || ack.ScheduledID == 0 || ack.Seq != 0 || ack.Duplicate || !ack.SendAt.Equal(soon.Truncate(time.Millisecond)) {
		t.Fatalf("schedule: %+v, %v", ack, err)
	}
	again, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "later", ClientMsgID: "sch-1", SendAt: soon})
	if err != nil || again.ScheduledID != ack.ScheduledID || !again.Duplicate {
		t.Fatalf("the same schedule again: %+v, %v; want the first, duplicate", again, err)
	}
	far, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "much later", SendAt: time.Now().Add(30 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	// "sch-2" was sent already, as if a node died after sending it and
	// before dropping it: the scheduler's send is a duplicate, stored once.
	if _, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "twice?", ClientMsgID: "sch-2", SendAt: soon}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "twice?", ClientMsgID: "sch-2"}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ScheduledMessages(ctx, alice)
	if err != nil || len(list) != 3 || list[0].ID != ack.ScheduledID || list[0].ToUser != "bob" || list[2].ID != far.ScheduledID {
		t.Fatalf("alice's scheduled: %+v, %v", list, err)
	}
	if got := historyTexts(t, s, bob, conv); len(got) != 1 {
		t.Fatalf("before it is due bob has %v, want only the direct send", got)
	}

	for _, tt := range []struct {
		name string
		id   Identity
		req  SendRequest
		want wire.Code
	}{
		{"in the past", alice, SendRequest{ToUser: "bob", Text: "x", SendAt: time.Now().Add(-time.Second)}, wire.CodeBadRequest},
		{"beyond the horizon", alice, SendRequest{ToUser: "bob", Text: "x", SendAt: time.Now().Add(2 * time.Hour)}, wire.CodeBadRequest},
		{"a broadcast", alice, SendRequest{Broadcast: true, Text: "x", SendAt: soon}, wire.CodeBadRequest},
		{"no text", alice, SendRequest{ToUser: "bob", SendAt: soon}, wire.CodeBadRequest},
		{"nobody", alice, SendRequest{ToUser: "nobody", Text: "x", SendAt: soon}, wire.CodeNotFound},
		{"not a member", carol, SendRequest{ToGroup: "g_1", Text: "x", SendAt: soon}, wire.CodeNotMember},
		{"a bad group id", carol, SendRequest{ToGroup: "p_1_2", Text: "x", SendAt: soon}, wire.CodeBadRequest},
	} {
		if _, err := s.Send(ctx, tt.id, tt.req); Code(err) != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}

	// Cancel: one's own, once.
	if err := s.CancelScheduled(ctx, bob, far.ScheduledID); Code(err) != wire.CodeNotFound {
		t.Errorf("bob cancels alice's: %v, want not_found", err)
	}
	if err := s.CancelScheduled(ctx, alice, far.ScheduledID); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelScheduled(ctx, alice, far.ScheduledID); Code(err) != wire.CodeNotFound {
		t.Errorf("cancel twice: %v, want not_found", err)
	}

	// Due: sent with fresh seqs, once each, and gone from the list. The
	// scheduler drops an entry after its send, so the list empties last.
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := historyTexts(t, s, bob, conv)
		list, err := s.ScheduledMessages(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 2 || (len(got) == 2 && (got[0] != "twice?" || got[1] != "later")) {
			t.Fatalf("after they were due bob has %q; want [twice? later]", got)
		}
		if len(got) == 2 && len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled messages were not all sent and dropped: bob has %q, alice %d scheduled", got, len(list))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSchedulingOff(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.ScheduleHorizon = -1 })
	alice := login(t, s, "alice", "", "").Identity
	login(t, s, "bob", "", "")
	if _, err := s.Send(context.Background(), alice, SendRequest{ToUser: "bob", Text: "x", SendAt: time.Now().Add(time.Minute)}); Code(err) != wire.CodeForbidden {
		t.Errorf("scheduling while off: %v, want forbidden", err)
	}
}

// A scheduled message that can no longer be sent at its time is marked
// refused with the reason (listed, never sent, never tried again) and its
// sender's devices get one scheduled.refused notice each.
func TestScheduledRefusedAtItsTime(t *testing.T) {
	s, bus := newTestService(t, func(c *Config) { c.ScheduleHorizon = time.Hour })
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	carol := login(t, s, "carol", "", "").Identity
	phone := connect(bus, "gw1", 1, alice)
	connect(bus, "gw1", 2, bob)
	left, err := s.CreateGroup(ctx, bob, "left", []string{"alice"}, "")
	if err != nil {
		t.Fatal(err)
	}
	removed, err := s.CreateGroup(ctx, bob, "removed", []string{"alice"}, "")
	if err != nil {
		t.Fatal(err)
	}
	gone, err := s.CreateGroup(ctx, bob, "gone", []string{"alice"}, "")
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(1200 * time.Millisecond)
	schedule := func(req SendRequest) int64 {
		t.Helper()
		req.Text, req.SendAt = "later", soon
		ack, err := s.Send(ctx, alice, req)
		if err != nil {
			t.Fatal(err)
		}
		return ack.ScheduledID
	}
	want := map[int64]wire.Code{
		schedule(SendRequest{ToGroup: left.ID}):    wire.CodeNotMember,
		schedule(SendRequest{ToGroup: removed.ID}): wire.CodeNotMember,
		schedule(SendRequest{ToGroup: gone.ID}):    wire.CodeNotMember, // dissolved: nobody is a member
		schedule(SendRequest{ToUser: "bob"}):       wire.CodeBlocked,
	}
	ok := schedule(SendRequest{ToUser: "carol"})
	if err := s.LeaveGroup(ctx, alice, left.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveMember(ctx, bob, removed.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.DissolveGroup(ctx, bob, gone.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Block(ctx, bob, "alice"); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(15 * time.Second)
	var list []ScheduledView
	for {
		if list, err = s.ScheduledMessages(ctx, alice); err != nil {
			t.Fatal(err)
		}
		refused := 0
		for _, v := range list {
			if v.Status == ScheduledRefused {
				refused++
			}
		}
		if refused == len(want) && len(list) == len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's scheduled messages: %+v; want %d refused and the one to carol sent", list, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, v := range list {
		code, wanted := want[v.ID]
		if !wanted || v.Code != code.String() || v.Reason == "" || v.RefusedAt < soon.UnixMilli() || v.ID == ok {
			t.Errorf("listed %+v; want code %v with a reason and a time", v, code)
		}
	}
	if got := historyTexts(t, s, carol, store.PrivateConversationID(alice.UserID, carol.UserID)); len(got) != 1 {
		t.Errorf("carol got %q, want the one message", got)
	}
	// One notice per refused message, to alice's device, with its id and code.
	time.Sleep(2 * scheduleTick) // a second try would have happened by now
	seen := map[int64]int{}
	for _, d := range bus.noticesSeen() {
		n := d.env.GetNotice()
		if n.GetType() != store.NoticeScheduledRefused {
			continue
		}
		seen[n.GetScheduledId()]++
		if !slices.Equal(d.conns, []uint64{phone.Conn}) || wire.Code(n.GetCode()) != want[n.GetScheduledId()] || n.GetReason() == "" {
			t.Errorf("notice %+v to %v; want alice's phone, code %v", n, d.conns, want[n.GetScheduledId()])
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("scheduled message %d: %d notices, want 1", id, seen[id])
		}
	}
	// Dismissed with a cancel; the refused ones do not count in the limit.
	for id := range want {
		if err := s.CancelScheduled(ctx, alice, id); err != nil {
			t.Fatalf("cancel refused %d: %v", id, err)
		}
	}
	if list, _ := s.ScheduledMessages(ctx, alice); len(list) != 0 {
		t.Errorf("after cancelling the refused ones: %+v", list)
	}
}
