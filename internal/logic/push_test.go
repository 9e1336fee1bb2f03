package logic

import (
	"context"
	"strings"
	"testing"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

func TestPushRejects(t *testing.T) {
	s, _ := newTestService(t, nil)
	login(t, s, "alice", "", "")
	login(t, s, "bob", "", "")
	many := make([]string, MaxPushUsers+1)
	for i := range many {
		many[i] = "bob"
	}
	tests := []struct {
		name     string
		req      PushRequest
		wantCode wire.Code
		wantMsg  string
	}{
		{"no target", PushRequest{Text: "x", Transient: true}, wire.CodeBadRequest, "set exactly one of to_users, to_group and everyone"},
		{"two targets", PushRequest{ToUsers: []string{"bob"}, Everyone: true, Text: "x", Transient: true}, wire.CodeBadRequest, "set exactly one of to_users, to_group and everyone"},
		{"empty text", PushRequest{ToUsers: []string{"bob"}, Transient: true}, wire.CodeBadRequest, "text is empty"},
		{"text too long", PushRequest{ToUsers: []string{"bob"}, Text: strings.Repeat("x", wire.MaxText+1), Transient: true}, wire.CodeTooLarge, "text is 16385 bytes, limit 16384"},
		{"too many users", PushRequest{ToUsers: many, Text: "x", Transient: true}, wire.CodeTooLarge, "to_users: at most 1000 users"},
		{"unknown user", PushRequest{ToUsers: []string{"bob", "nobody"}, Text: "x", Transient: true}, wire.CodeNotFound, "no such user: nobody"},
		{"invalid user", PushRequest{ToUsers: []string{"a.b"}, Text: "x", Transient: true}, wire.CodeBadRequest, `to_users: "a.b" is not a valid username`},
		{"not a group id", PushRequest{ToGroup: "p_1_2", Text: "x", Transient: true}, wire.CodeBadRequest, "to_group: not a group id"},
		{"group subject characters", PushRequest{ToGroup: "g_1.>", Text: "x", Transient: true}, wire.CodeBadRequest, "to_group: not a group id"},
		{"unknown group", PushRequest{ToGroup: "g_999", Text: "x", Transient: true}, wire.CodeNotFound, "no such group"},
		{"sender with a space", PushRequest{ToUsers: []string{"bob"}, From: "a b", Text: "x", Transient: true}, wire.CodeBadRequest, "from: contains a space, control or non-ASCII character"},
		{"stored without from", PushRequest{ToUsers: []string{"bob"}, Text: "x"}, wire.CodeBadRequest, "from is required for a stored push"},
		{"stored from unknown user", PushRequest{ToUsers: []string{"bob"}, From: "ghost", Text: "x"}, wire.CodeBadRequest, "from: no such user"},
		{"stored to everyone", PushRequest{Everyone: true, From: "alice", Text: "x"}, wire.CodeBadRequest, "everyone is transient only: set transient, or name to_users or to_group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.req.KeyID = "backend"
			_, err := s.Push(context.Background(), tt.req)
			if Code(err) != tt.wantCode || Message(err) != tt.wantMsg {
				t.Fatalf("got %v (code %v), want %q (code %v)", err, Code(err), tt.wantMsg, tt.wantCode)
			}
		})
	}
}

func TestPushTransient(t *testing.T) {
	s, bus := newTestService(t, nil)
	bob := login(t, s, "bob", "", "").Identity
	carol := login(t, s, "carol", "", "").Identity
	bus.Add(&clusterpb.ConnRef{UserId: bob.UserID, Gateway: "gw1", Conn: 1})
	bus.Add(&clusterpb.ConnRef{UserId: bob.UserID, Gateway: "gw2", Conn: 2})
	bus.Add(&clusterpb.ConnRef{UserId: carol.UserID, Gateway: "gw1", Conn: 3})
	ctx := context.Background()

	res, err := s.Push(ctx, PushRequest{KeyID: "backend", ToUsers: []string{"bob", "bob"}, Text: "ding", Transient: true})
	if err != nil || res.Delivered != 2 || res.Stored != 0 {
		t.Fatalf("got %+v, %v; want 2 delivered", res, err)
	}
	for _, d := range bus.waitDeliveries(t, 2) {
		m := d.env.GetMessage()
		if m == nil || m.Kind != magpiepb.MessageKind_MESSAGE_KIND_NOTIFICATION || !m.Transient || m.Seq != 0 ||
			m.Sender != "backend" || m.Text != "ding" || m.SentAt == 0 {
			t.Fatalf("delivered %v", d.env)
		}
	}

	res, err = s.Push(ctx, PushRequest{KeyID: "backend", Everyone: true, From: "ops", Text: "maintenance", Transient: true})
	if err != nil || res.Delivered != 3 {
		t.Fatalf("everyone: got %+v, %v; want 3 delivered", res, err)
	}
	for _, d := range bus.waitDeliveries(t, 2) { // one per live gateway
		if m := d.env.GetMessage(); m.Sender != "ops" || !m.Transient {
			t.Fatalf("delivered %v", d.env)
		}
	}

	// Nothing was stored.
	if convs, err := s.Conversations(ctx, bob); err != nil || len(convs) != 0 {
		t.Fatalf("bob's conversations: %v, %v; want none", convs, err)
	}
}

func TestPushStored(t *testing.T) {
	s, _ := newTestService(t, nil)
	login(t, s, "alice", "", "")
	bob := login(t, s, "bob", "", "").Identity
	login(t, s, "carol", "", "")
	res, err := s.Push(context.Background(), PushRequest{KeyID: "backend", ToUsers: []string{"bob", "carol"}, From: "alice", Text: "invoice ready"})
	if err != nil || res.Stored != 2 || len(res.Acks) != 2 {
		t.Fatalf("got %+v, %v; want 2 stored", res, err)
	}
	for i, want := range []string{"bob", "carol"} {
		a := res.Acks[i]
		if a.To != want || a.Err != nil || a.Ack.Seq != 1 || !strings.HasPrefix(a.Ack.ConversationID, "p_") {
			t.Fatalf("ack %d: %+v", i, a)
		}
	}
	msgs, _, err := s.History(context.Background(), bob, store.MessageQuery{ConversationID: res.Acks[0].Ack.ConversationID})
	if err != nil || len(msgs) != 1 || msgs[0].Text != "invoice ready" || msgs[0].Sender != "alice" {
		t.Fatalf("bob's history: %+v, %v", msgs, err)
	}
}

func TestPushStoredIdempotent(t *testing.T) {
	s, _ := newTestService(t, nil)
	login(t, s, "alice", "", "")
	bob := login(t, s, "bob", "", "").Identity
	login(t, s, "carol", "", "")
	ctx := context.Background()
	req := PushRequest{KeyID: "backend", ToUsers: []string{"bob", "Carol"}, From: "alice", Text: "invoice ready", PushID: "inv-42"}
	first, err := s.Push(ctx, req)
	if err != nil || first.Stored != 2 {
		t.Fatalf("first: %+v, %v", first, err)
	}
	// The backend timed out and retries: nothing new is stored.
	again, err := s.Push(ctx, req)
	if err != nil || again.Stored != 2 {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	for i, want := range []string{"push:inv-42:bob", "push:inv-42:carol"} {
		a, b := first.Acks[i], again.Acks[i]
		if a.Ack.ClientMsgID != want || a.Ack.Duplicate || a.Ack.Seq != 1 {
			t.Fatalf("first ack %d: %+v, want client_msg_id %q, not duplicate", i, a, want)
		}
		if b.Ack.ClientMsgID != want || !b.Ack.Duplicate || b.Ack.Seq != a.Ack.Seq || b.Ack.ConversationID != a.Ack.ConversationID {
			t.Fatalf("retried ack %d: %+v, want the original %+v marked duplicate", i, b, a)
		}
	}
	msgs, _, err := s.History(ctx, bob, store.MessageQuery{ConversationID: first.Acks[0].Ack.ConversationID})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("bob's history after a retry: %d messages, %v; want 1", len(msgs), err)
	}
	// Another push_id is another push.
	req.PushID = "inv-43"
	if res, err := s.Push(ctx, req); err != nil || res.Acks[0].Ack.Duplicate || res.Acks[0].Ack.Seq != 2 {
		t.Fatalf("new push_id: %+v, %v", res, err)
	}

	long := "bartholomew-the-2nd" // 19 characters: with a 48-byte push_id, 73 bytes
	login(t, s, long, "", "")
	for _, tt := range []struct {
		name, pushID string
		to           []string
		want         string
	}{
		{"push_id with a space", "inv 42", []string{"bob"}, "push_id: contains a space, control or non-ASCII character"},
		{"push_id too long", strings.Repeat("x", MaxPushID+1), []string{"bob"}, "push_id: must be 1-48 bytes"},
		{"derived id too long", strings.Repeat("x", MaxPushID), []string{"bob", long},
			`push_id: with target "bartholomew-the-2nd" the message id "push:` + strings.Repeat("x", MaxPushID) +
				`:bartholomew-the-2nd" would be 73 bytes, limit 64; use a shorter push_id`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Push(ctx, PushRequest{KeyID: "backend", ToUsers: tt.to, From: "alice", Text: "x", PushID: tt.pushID})
			if Code(err) != wire.CodeBadRequest || Message(err) != tt.want {
				t.Fatalf("got %v (code %v), want %q", err, Code(err), tt.want)
			}
		})
	}
	// The refused pushes stored nothing, not even for the short target.
	msgs, _, err = s.History(ctx, bob, store.MessageQuery{ConversationID: first.Acks[0].Ack.ConversationID})
	if err != nil || len(msgs) != 2 {
		t.Fatalf("bob's history after refused pushes: %d messages, %v; want 2", len(msgs), err)
	}
}
