package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

func testMessages(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := store.PrivateConversationID(alice.ID, bob.ID)
	const n = 600 // more than the largest page
	for b := range 2 {
		var reqs []store.AppendRequest
		for i := range n / 2 {
			k := b*n/2 + i
			from, to := alice, bob
			if k%2 == 1 {
				from, to = bob, alice
			}
			reqs = append(reqs, privateReq(from, to, fmt.Sprintf("m%d", k), fmt.Sprintf("text %d", k+1), at(k)))
		}
		mustAppend(t, s, reqs...)
	}

	tests := []struct {
		name        string
		q           store.MessageQuery
		first, last uint64 // 0, 0: no messages
	}{
		{"default limit", store.MessageQuery{}, 1, 100},
		{"limit clamped to 500", store.MessageQuery{Limit: 1000}, 1, 500},
		{"limit 1", store.MessageQuery{Limit: 1}, 1, 1},
		{"after", store.MessageQuery{AfterSeq: 590}, 591, 600},
		{"after the end", store.MessageQuery{AfterSeq: 600}, 0, 0},
		{"before", store.MessageQuery{BeforeSeq: 11, Limit: 5}, 6, 10},
		{"before near the start", store.MessageQuery{BeforeSeq: 3, Limit: 10}, 1, 2},
		{"before the start", store.MessageQuery{BeforeSeq: 1}, 0, 0},
		{"before with default limit", store.MessageQuery{BeforeSeq: 601}, 501, 600},
		{"between", store.MessageQuery{AfterSeq: 5, BeforeSeq: 11, Limit: 3}, 8, 10},
	}
	for _, tt := range tests {
		tt.q.ConversationID = conv
		msgs, err := s.Messages(t.Context(), bob.ID, tt.q)
		if err != nil {
			t.Fatalf("%s: Messages(%+v): %v", tt.name, tt.q, err)
		}
		var want int
		if tt.last > 0 {
			want = int(tt.last - tt.first + 1)
		}
		if len(msgs) != want {
			t.Errorf("%s: got %d messages, want %d (%d..%d)", tt.name, len(msgs), want, tt.first, tt.last)
			continue
		}
		for i, m := range msgs {
			seq := tt.first + uint64(i)
			sender := "alice"
			if seq%2 == 0 {
				sender = "bob"
			}
			if m.Seq != seq || m.ConversationID != conv || m.Sender != sender || m.Text != fmt.Sprintf("text %d", seq) ||
				m.ClientMsgID != fmt.Sprintf("m%d", seq-1) || !m.SentAt.Equal(at(int(seq-1))) {
				t.Errorf("%s: message %d = %+v, want seq %d from %s", tt.name, i, m, seq, sender)
				break
			}
		}
	}

	for _, tt := range []struct {
		name string
		user int64
		conv string
	}{
		{"stranger", carol.ID, conv},
		{"unknown conversation", alice.ID, "g_nope"},
	} {
		_, err := s.Messages(t.Context(), tt.user, store.MessageQuery{ConversationID: tt.conv})
		wantErr(t, "Messages: "+tt.name, err, store.ErrNotMember)
	}
}

func testConversations(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave")
	ab, ac := store.PrivateConversationID(alice.ID, bob.ID), store.PrivateConversationID(alice.ID, carol.ID)
	sendN(t, s, alice, bob, "ab", 3) // at(1)..at(3)
	mustAppend(t, s, privateReq(carol, alice, "ca", "from carol", at(10)))

	list := func(u store.User) []store.Conversation {
		t.Helper()
		cs, err := s.Conversations(ctx, u.ID)
		if err != nil {
			t.Fatalf("Conversations(%s): %v", u.Username, err)
		}
		return cs
	}
	ids := func(cs []store.Conversation) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}

	cs := list(alice)
	if want := []string{ac, ab}; !slices.Equal(ids(cs), want) {
		t.Fatalf("alice's conversations = %v, want %v (most recent first)", ids(cs), want)
	}
	check := func(who string, c store.Conversation, want store.Conversation, lastText, lastSender string) {
		t.Helper()
		lm := c.LastMessage
		c.LastMessage, c.UpdatedAt = nil, want.UpdatedAt
		if c != want {
			t.Errorf("%s: conversation = %+v, want %+v", who, c, want)
		}
		if lm == nil || lm.Seq != want.LastSeq || lm.Text != lastText || lm.Sender != lastSender || lm.ConversationID != want.ID {
			t.Errorf("%s: last message = %+v, want seq %d %q from %s", who, lm, want.LastSeq, lastText, lastSender)
		}
	}
	check("alice/carol", cs[0], store.Conversation{ID: ac, Kind: store.Private, LastSeq: 1,
		PeerID: carol.ID, Peer: "carol", PeerDeliveredSeq: 1, PeerReadSeq: 1}, "from carol", "carol")
	check("alice/bob", cs[1], store.Conversation{ID: ab, Kind: store.Private, LastSeq: 3, DeliveredSeq: 3, ReadSeq: 3,
		PeerID: bob.ID, Peer: "bob"}, "ab text 2", "alice")
	if cs[0].Unread() != 1 || cs[1].Unread() != 0 {
		t.Errorf("alice's unread = %d, %d; want 1, 0", cs[0].Unread(), cs[1].Unread())
	}

	bobs := list(bob)
	if len(bobs) != 1 || bobs[0].Unread() != 3 || bobs[0].PeerID != alice.ID || bobs[0].Peer != "alice" || bobs[0].PeerReadSeq != 3 {
		t.Errorf("bob's conversations = %+v, want one with alice, 3 unread, alice read 3", bobs)
	}
	if got := list(dave); len(got) != 0 {
		t.Errorf("dave's conversations = %+v, want none", got)
	}

	// Bob reads two; alice sees it as his cursors.
	if _, err := s.MoveCursor(ctx, bob.ID, ab, store.Read, 2); err != nil {
		t.Fatalf("MoveCursor: %v", err)
	}
	c, err := s.Conversation(ctx, alice.ID, ab)
	if err != nil {
		t.Fatalf("Conversation: %v", err)
	}
	if c.PeerReadSeq != 2 || c.PeerDeliveredSeq != 2 {
		t.Errorf("bob's cursors seen by alice = read %d delivered %d, want 2, 2", c.PeerReadSeq, c.PeerDeliveredSeq)
	}
	if c, _ := s.Conversation(ctx, bob.ID, ab); c.Unread() != 1 {
		t.Errorf("bob's unread = %d, want 1", c.Unread())
	}

	// A new message moves its conversation to the top.
	mustAppend(t, s, privateReq(bob, alice, "ba", "reply", at(20)))
	cs = list(alice)
	if want := []string{ab, ac}; !slices.Equal(ids(cs), want) {
		t.Errorf("after bob's reply, alice's conversations = %v, want %v", ids(cs), want)
	}
	if !cs[0].UpdatedAt.After(cs[1].UpdatedAt) || cs[0].LastMessage == nil || cs[0].LastMessage.Text != "reply" {
		t.Errorf("alice's top conversation = %+v, want updated after the other, last message %q", cs[0], "reply")
	}
}

func testConversationNotMember(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	sendN(t, s, alice, bob, "ab", 1)
	for _, tt := range []struct {
		name string
		user int64
		conv string
	}{
		{"stranger", carol.ID, store.PrivateConversationID(alice.ID, bob.ID)},
		{"unknown conversation", alice.ID, store.PrivateConversationID(alice.ID, carol.ID)},
	} {
		_, err := s.Conversation(t.Context(), tt.user, tt.conv)
		wantErr(t, "Conversation: "+tt.name, err, store.ErrNotMember)
	}
}

func testMembers(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	sendN(t, s, bob, alice, "ba", 1)
	got, err := s.Members(t.Context(), store.PrivateConversationID(alice.ID, bob.ID))
	slices.Sort(got)
	if want := []int64{alice.ID, bob.ID}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Members = %v, %v; want %v", got, err, want)
	}
	_, err = s.Members(t.Context(), "g_nope")
	wantErr(t, "Members(unknown)", err, store.ErrNotFound)
}

func testCursors(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := store.PrivateConversationID(alice.ID, bob.ID)
	sendN(t, s, alice, bob, "ab", 5)

	// Steps run in order against bob's cursors; each names the state after.
	steps := []struct {
		kind            store.CursorKind
		seq             uint64
		delivered, read uint64
		moved           bool
		wantErr         error
	}{
		{store.Delivered, 2, 2, 0, true, nil},
		{store.Delivered, 1, 2, 0, false, nil},
		{store.Delivered, 2, 2, 0, false, nil},
		{store.Read, 0, 2, 0, false, nil},
		{store.Read, 1, 2, 1, true, nil},
		{store.Read, 4, 4, 4, true, nil}, // reading moves delivered up too
		{store.Delivered, 3, 4, 4, false, nil},
		{store.Read, 4, 4, 4, false, nil},
		{store.Delivered, 5, 5, 4, true, nil},
		{store.Read, 6, 5, 4, false, store.ErrSeqOutOfRange},
		{store.Delivered, 99, 5, 4, false, store.ErrSeqOutOfRange},
		{store.Read, 5, 5, 5, true, nil},
	}
	for i, st := range steps {
		cur, err := s.MoveCursor(t.Context(), bob.ID, conv, st.kind, st.seq)
		what := fmt.Sprintf("step %d: MoveCursor(kind %d, %d)", i, st.kind, st.seq)
		if st.wantErr != nil {
			wantErr(t, what, err, st.wantErr)
		} else if err != nil {
			t.Fatalf("%s: %v", what, err)
		} else {
			want := store.Cursors{ConversationID: conv, UserID: bob.ID, DeliveredSeq: st.delivered, ReadSeq: st.read, LastSeq: 5, Moved: st.moved}
			if cur != want {
				t.Errorf("%s = %+v, want %+v", what, cur, want)
			}
		}
		c, err := s.Conversation(t.Context(), bob.ID, conv)
		if err != nil {
			t.Fatalf("%s: Conversation: %v", what, err)
		}
		if c.DeliveredSeq != st.delivered || c.ReadSeq != st.read || c.ReadSeq > c.DeliveredSeq || c.DeliveredSeq > c.LastSeq {
			t.Errorf("%s: stored cursors delivered %d read %d last %d, want delivered %d read %d",
				what, c.DeliveredSeq, c.ReadSeq, c.LastSeq, st.delivered, st.read)
		}
	}
	_, err := s.MoveCursor(t.Context(), carol.ID, conv, store.Read, 1)
	wantErr(t, "MoveCursor by a stranger", err, store.ErrNotMember)
	_, err = s.MoveCursor(t.Context(), alice.ID, "g_nope", store.Delivered, 1)
	wantErr(t, "MoveCursor in an unknown conversation", err, store.ErrNotMember)
}

func testSenderCursors(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := store.PrivateConversationID(alice.ID, bob.ID)
	cursors := func(u store.User) (uint64, uint64) {
		t.Helper()
		c, err := s.Conversation(ctx, u.ID, conv)
		if err != nil {
			t.Fatalf("Conversation(%s): %v", u.Username, err)
		}
		return c.DeliveredSeq, c.ReadSeq
	}
	tests := []struct {
		name           string
		reqs           []store.AppendRequest
		aliceD, aliceR uint64
		bobD, bobR     uint64
	}{
		{"alice sends three", []store.AppendRequest{
			privateReq(alice, bob, "a1", "", at(1)), privateReq(alice, bob, "a2", "", at(2)), privateReq(alice, bob, "a3", "", at(3)),
		}, 3, 3, 0, 0},
		{"bob replies; alice's cursors stay", []store.AppendRequest{privateReq(bob, alice, "b1", "", at(4))}, 3, 3, 4, 4},
		{"both in one batch", []store.AppendRequest{
			privateReq(alice, bob, "a4", "", at(5)), privateReq(bob, alice, "b2", "", at(6)), privateReq(alice, bob, "a5", "", at(7)),
		}, 7, 7, 6, 6},
		{"a retry moves nothing", []store.AppendRequest{privateReq(bob, alice, "b1", "", at(8))}, 7, 7, 6, 6},
	}
	for _, tt := range tests {
		mustAppend(t, s, tt.reqs...)
		if d, r := cursors(alice); d != tt.aliceD || r != tt.aliceR {
			t.Errorf("%s: alice's cursors = delivered %d read %d, want %d %d", tt.name, d, r, tt.aliceD, tt.aliceR)
		}
		if d, r := cursors(bob); d != tt.bobD || r != tt.bobR {
			t.Errorf("%s: bob's cursors = delivered %d read %d, want %d %d", tt.name, d, r, tt.bobD, tt.bobR)
		}
	}
}
