package logic

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// fakeHooks records After events and vetoes texts containing "veto".
type fakeHooks struct {
	mu     sync.Mutex
	events []Event
}

func (h *fakeHooks) BeforeSend(ctx context.Context, m OutgoingMessage) error {
	if strings.Contains(m.Text, "veto") {
		return Vetoed("no vetoes here")
	}
	return nil
}

func (h *fakeHooks) BeforeAdd(ctx context.Context, a AddRequest) error {
	if a.User == "mallory" || slices.Contains(a.Users, "mallory") {
		return Vetoed("")
	}
	return nil
}

func (h *fakeHooks) After(e Event) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

func (h *fakeHooks) types() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		out = append(out, e.Type)
	}
	return out
}

// fakeFiles serves FileMeta from a map.
type fakeFiles map[string]FileMeta

func (f fakeFiles) Stat(ctx context.Context, id string) (FileMeta, error) {
	m, ok := f[id]
	if !ok {
		return FileMeta{}, fmt.Errorf("file %q: %w", id, store.ErrNotFound)
	}
	return m, nil
}

func connect(bus *fakeBus, gw string, n uint64, id Identity) *clusterpb.ConnRef {
	c := &clusterpb.ConnRef{Gateway: gw, Conn: n, UserId: id.UserID}
	bus.Add(c)
	return c
}

func wantCode(t *testing.T, what string, err error, code wire.Code) {
	t.Helper()
	if got := Code(err); got != code {
		t.Errorf("%s: got %v (%v), want %v", what, got, err, code)
	}
}

func TestGroupFanOutOneEnvelopePerGateway(t *testing.T) {
	hooks := &fakeHooks{}
	s, bus := newTestService(t, func(c *Config) { c.Hooks = hooks })
	ctx := context.Background()
	alice, bob, carol := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity, login(t, s, "carol", "", "").Identity
	laptop := connect(bus, "gw1", 1, alice)
	connect(bus, "gw2", 2, alice)
	connect(bus, "gw1", 3, bob)
	connect(bus, "gw1", 4, carol)
	connect(bus, "gw2", 5, carol)

	g, err := s.CreateGroup(ctx, alice, "team", []string{"bob", "carol"}, "")
	if err != nil || g.MemberCount != 3 || g.Owner != "alice" {
		t.Fatalf("CreateGroup: %+v, %v", g, err)
	}
	for _, d := range bus.waitDeliveries(t, 2) { // the created event, to all 5 devices on 2 gateways
		if ev := d.env.GetMessage().GetEvent(); ev == nil || ev.Type != "created" || len(d.conns) < 2 {
			t.Fatalf("created event delivery = %+v", d)
		}
	}
	done := make(chan Ack, 1)
	s.SendAsync(ctx, alice, SendRequest{ToGroup: g.ID, Text: "hello team", ClientMsgID: "g1"}, laptop, func(a Ack, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- a
	})
	if ack := <-done; ack.Seq != 2 || ack.ConversationID != g.ID {
		t.Fatalf("ack = %+v, want seq 2 of %s", ack, g.ID)
	}
	got := map[string][]uint64{}
	for _, d := range bus.waitDeliveries(t, 2) {
		m := d.env.GetMessage()
		if m.GetText() != "hello team" || m.Seq != 2 || m.Sender != "alice" {
			t.Fatalf("delivery = %+v", d.env)
		}
		got[d.gateway] = append(got[d.gateway], d.conns...)
	}
	slices.Sort(got["gw1"])
	slices.Sort(got["gw2"])
	if !slices.Equal(got["gw1"], []uint64{3, 4}) || !slices.Equal(got["gw2"], []uint64{2, 5}) {
		t.Errorf("delivered to %v, want gw1 [3 4] and gw2 [2 5] (not the sending laptop)", got)
	}
	msgs, last, err := s.History(ctx, bob, store.MessageQuery{ConversationID: g.ID})
	if err != nil || last != 2 || len(msgs) != 2 || msgs[1].Text != "hello team" {
		t.Fatalf("bob's history = %+v (last %d), %v", msgs, last, err)
	}
	if !slices.Contains(hooks.types(), "group.created") || !slices.Contains(hooks.types(), "message.stored") {
		t.Errorf("hook events = %v", hooks.types())
	}
}

func TestGroupSendRefusals(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.Hooks = &fakeHooks{}; c.MaxGroupSize = 3 })
	ctx := context.Background()
	alice, bob, dave := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity, login(t, s, "dave", "", "").Identity
	login(t, s, "carol", "", "")
	g, err := s.CreateGroup(ctx, alice, "team", []string{"bob", "carol"}, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(ctx, dave, SendRequest{ToGroup: g.ID, Text: "hi"})
	wantCode(t, "non-member send", err, wire.CodeNotMember)
	if err := s.MuteMember(ctx, alice, g.ID, "bob", time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(ctx, bob, SendRequest{ToGroup: g.ID, Text: "hi"})
	wantCode(t, "muted send", err, wire.CodeForbidden)
	if !strings.HasPrefix(Message(err), "you are muted until ") {
		t.Errorf("muted message = %q", Message(err))
	}
	_, err = s.Send(ctx, alice, SendRequest{ToGroup: g.ID, Text: "please veto"})
	wantCode(t, "vetoed by the hook", err, wire.CodeForbidden)
	_, err = s.AddMembers(ctx, alice, g.ID, []string{"dave"})
	wantCode(t, "over the max size", err, wire.CodeConflict)
	wantCode(t, "bob makes himself admin", s.SetRole(ctx, bob, g.ID, "bob", "admin"), wire.CodeForbidden)
	wantCode(t, "the owner leaves", s.LeaveGroup(ctx, alice, g.ID), wire.CodeConflict)
	_, err = s.Send(ctx, alice, SendRequest{ToGroup: "g_x", Text: "hi"})
	wantCode(t, "malformed group id", err, wire.CodeBadRequest)
}

func TestHistoryAfterLeaving(t *testing.T) {
	s, _ := newTestService(t, nil)
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	g, err := s.CreateGroup(ctx, alice, "team", []string{"bob"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, alice, SendRequest{ToGroup: g.ID, Text: "before"}); err != nil {
		t.Fatal(err)
	}
	if err := s.LeaveGroup(ctx, bob, g.ID); err != nil { // seq 3
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, alice, SendRequest{ToGroup: g.ID, Text: "after"}); err != nil {
		t.Fatal(err)
	}
	msgs, last, err := s.History(ctx, bob, store.MessageQuery{ConversationID: g.ID})
	if err != nil || last != 3 || len(msgs) != 3 || msgs[2].Event == nil || msgs[2].Event.Type != "left" {
		t.Fatalf("history after leaving = %+v (last %d), %v; want up to the left event at 3", msgs, last, err)
	}
}

func TestRecallAndEditDelivered(t *testing.T) {
	s, bus := newTestService(t, func(c *Config) { c.RecallWindow = time.Minute })
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	connect(bus, "gw1", 7, bob)
	ack, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "tpyo"})
	if err != nil {
		t.Fatal(err)
	}
	bus.waitDeliveries(t, 1)
	conv := ack.ConversationID
	_, err = s.Edit(ctx, bob, ChangeRequest{ConversationID: conv, Seq: 1, Text: "mine now"})
	wantCode(t, "edit someone else's", err, wire.CodeForbidden)
	edit, err := s.Edit(ctx, alice, ChangeRequest{ConversationID: conv, Seq: 1, Text: "typo"})
	if err != nil || edit.Seq != 2 {
		t.Fatalf("edit: %+v, %v", edit, err)
	}
	d := bus.waitDeliveries(t, 1)[0].env.GetMessage()
	if d.Kind != magpiepb.MessageKind_MESSAGE_KIND_EDIT || d.RefSeq != 1 || d.Text != "typo" || d.Peer != "alice" {
		t.Errorf("edit delivery = %+v", d)
	}
	if _, err := s.Recall(ctx, alice, ChangeRequest{ConversationID: conv, Seq: 1}); err != nil {
		t.Fatal(err)
	}
	if d := bus.waitDeliveries(t, 1)[0].env.GetMessage(); d.Kind != magpiepb.MessageKind_MESSAGE_KIND_RECALL || d.RefSeq != 1 {
		t.Errorf("recall delivery = %+v", d)
	}
	msgs, _, err := s.History(ctx, bob, store.MessageQuery{ConversationID: conv})
	if err != nil || !msgs[0].Recalled || msgs[0].Text != "" {
		t.Fatalf("original after recall = %+v, %v", msgs, err)
	}
	_, err = s.Recall(ctx, alice, ChangeRequest{ConversationID: "p_998_999", Seq: 1})
	wantCode(t, "recall in a stranger's chat", err, wire.CodeNotMember)

	s.now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	ack2, _ := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "x"})
	s.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
	_, err = s.Recall(ctx, alice, ChangeRequest{ConversationID: conv, Seq: ack2.Seq})
	wantCode(t, "recall outside the window", err, wire.CodeForbidden)
}

func TestBroadcast(t *testing.T) {
	s, bus := newTestService(t, func(c *Config) { c.Admins = []string{"Root"} })
	ctx := context.Background()
	root, alice := login(t, s, "root", "", "").Identity, login(t, s, "alice", "", "").Identity
	_, err := s.Send(ctx, alice, SendRequest{Broadcast: true, Text: "hear me"})
	wantCode(t, "broadcast by a non-admin", err, wire.CodeForbidden)
	ack, err := s.Send(ctx, root, SendRequest{Broadcast: true, Text: "maintenance at 5"})
	if err != nil || ack.Seq != 0 {
		t.Fatalf("admin broadcast: %+v, %v", ack, err)
	}
	for _, d := range bus.waitDeliveries(t, 2) { // one per live gateway
		m := d.env.GetMessage()
		if !m.Transient || m.Seq != 0 || m.Text != "maintenance at 5" || m.Sender != "root" {
			t.Errorf("broadcast delivery = %+v", m)
		}
	}
}

func TestFriendshipBlocksAndFiles(t *testing.T) {
	files := fakeFiles{}
	s, _ := newTestService(t, func(c *Config) { c.RequireFriendship = true; c.Files = files })
	ctx := context.Background()
	alice, bob, carol := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity, login(t, s, "carol", "", "").Identity
	files["f-alice"] = FileMeta{ID: "f-alice", OwnerID: alice.UserID, Name: "a.png", ContentType: "image/png", Size: 3}
	files["f-bob"] = FileMeta{ID: "f-bob", OwnerID: bob.UserID, Name: "b.png", ContentType: "image/png", Size: 3}

	_, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "hi"})
	wantCode(t, "stranger with friendship required", err, wire.CodeForbidden)
	if st, err := s.RequestFriend(ctx, alice, "bob"); err != nil || st != store.FriendRequested {
		t.Fatalf("request: %v %v", st, err)
	}
	if err := s.AcceptFriend(ctx, bob, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", FileID: "f-alice"}); err != nil {
		t.Fatalf("file to a friend: %v", err)
	}
	_, err = s.Send(ctx, alice, SendRequest{ToUser: "bob", FileID: "f-bob"})
	wantCode(t, "someone else's file", err, wire.CodeForbidden)
	_, err = s.Send(ctx, alice, SendRequest{ToUser: "bob", FileID: "nope"})
	wantCode(t, "unknown file", err, wire.CodeNotFound)
	for _, tt := range []struct {
		who  Identity
		want bool
	}{{alice, true}, {bob, true}, {carol, false}} {
		if ok, err := s.CanSeeFile(ctx, tt.who, "f-alice"); err != nil || ok != tt.want {
			t.Errorf("CanSeeFile(%s) = %v, %v; want %v", tt.who.Username, ok, err, tt.want)
		}
	}
	if err := s.Block(ctx, bob, "alice"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "hi?"})
	wantCode(t, "blocked sender", err, wire.CodeBlocked)
}

func TestConversationFlagsPushed(t *testing.T) {
	s, bus := newTestService(t, nil)
	ctx := context.Background()
	alice := login(t, s, "alice", "", "").Identity
	login(t, s, "bob", "", "")
	phone := connect(bus, "gw1", 1, alice)
	connect(bus, "gw2", 2, alice)
	ack, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: "hi"})
	if err != nil {
		t.Fatal(err)
	}
	bus.waitDeliveries(t, 2) // to both devices (no origin), after the ACK
	yes := true
	c, err := s.SetConversationFlags(ctx, alice, ack.ConversationID, &yes, nil, phone)
	if err != nil || !c.Pinned {
		t.Fatalf("pin: %+v, %v", c, err)
	}
	d := bus.waitDeliveries(t, 1)[0]
	if cs := d.env.GetConversation(); cs == nil || !cs.Pinned || cs.Kind != "private" || d.conns[0] != 2 {
		t.Errorf("flag push = %+v to %v, want pinned state to conn 2 only", d.env, d.conns)
	}
}

func TestBigGroupReceiptsStayHome(t *testing.T) {
	s, bus := newTestService(t, nil)
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	names := []string{"bob"}
	for i := range SmallGroup {
		u, err := s.store.CreateUser(ctx, store.DefaultApp, fmt.Sprintf("m%03d", i), "x")
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, u.Username)
	}
	connect(bus, "gw1", 1, alice)
	connect(bus, "gw1", 2, bob)
	connect(bus, "gw1", 3, bob)
	for _, tt := range []struct {
		members []string
		want    int // connections told of bob's read receipt
	}{{names[:2], 2}, {names, 1}} {
		g, err := s.CreateGroup(ctx, alice, "g", tt.members, "")
		if err != nil {
			t.Fatal(err)
		}
		bus.take() // the created event, published before CreateGroup returned
		if _, err := s.Send(ctx, alice, SendRequest{ToGroup: g.ID, Text: "read me"}); err != nil {
			t.Fatal(err)
		}
		bus.waitDeliveries(t, 1) // fan-out runs after the ack
		if _, err := s.MoveCursor(ctx, bob, g.ID, store.Read, 2, &clusterpb.ConnRef{Gateway: "gw1", Conn: 3}); err != nil {
			t.Fatal(err)
		}
		d := bus.waitDeliveries(t, 1)[0]
		if len(d.conns) != tt.want {
			t.Errorf("group of %d: receipt went to %v, want %d connections", len(tt.members)+1, d.conns, tt.want)
		}
	}
	v, err := s.MessageReads(ctx, alice, "g_1", 2)
	if err != nil || v.ReadCount != 1 || v.MemberCount != 2 || !slices.Equal(v.Readers, []string{"bob"}) {
		t.Errorf("reads = %+v, %v", v, err)
	}
}

// TestHandleGroupRecallEdit drives the long connection: a group send, an
// edit and a recall are each answered by a send_ack, and the sender is the
// connection's user whatever the envelope says.
func TestHandleGroupRecallEdit(t *testing.T) {
	s, _ := newTestService(t, func(c *Config) { c.RecallWindow = time.Minute })
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	g, err := s.CreateGroup(ctx, alice, "team", []string{"bob"}, "")
	if err != nil {
		t.Fatal(err)
	}
	conn := &clusterpb.ConnRef{Gateway: "gw1", Conn: 1, UserId: bob.UserID}
	call := func(env *magpiepb.Envelope) *magpiepb.Envelope {
		t.Helper()
		b, _ := proto.Marshal(env)
		got := make(chan []byte, 1)
		s.handle(&clusterpb.Request{Conn: conn, Envelope: b}, func(b []byte) { got <- b })
		var out magpiepb.Envelope
		if err := proto.Unmarshal(<-got, &out); err != nil {
			t.Fatal(err)
		}
		return &out
	}
	tests := []struct {
		name    string
		env     *magpiepb.Envelope
		wantSeq uint64
		wantErr wire.Code
	}{
		{"group send", &magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToGroup: g.ID, Text: "hi", ClientMsgId: "b1"}}}, 2, 0},
		{"edit", &magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{ConversationId: g.ID, Seq: 2, Text: "hello"}}}, 3, 0},
		{"edit the created event", &magpiepb.Envelope{Id: 3, Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{ConversationId: g.ID, Seq: 1, Text: "x"}}}, 0, wire.CodeForbidden},
		{"recall", &magpiepb.Envelope{Id: 4, Body: &magpiepb.Envelope_Recall{Recall: &magpiepb.Recall{ConversationId: g.ID, Seq: 2, ClientMsgId: "r1"}}}, 4, 0},
		{"recall retried", &magpiepb.Envelope{Id: 5, Body: &magpiepb.Envelope_Recall{Recall: &magpiepb.Recall{ConversationId: g.ID, Seq: 2, ClientMsgId: "r1"}}}, 4, 0},
		{"broadcast without rights", &magpiepb.Envelope{Id: 6, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{Broadcast: true, Text: "all"}}}, 0, wire.CodeForbidden},
		{"file without storage", &magpiepb.Envelope{Id: 7, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToGroup: g.ID, FileId: "f1"}}}, 0, wire.CodeBadRequest},
	}
	for _, tt := range tests {
		out := call(tt.env)
		if out.Id != tt.env.Id {
			t.Errorf("%s: answer id %d, want %d", tt.name, out.Id, tt.env.Id)
		}
		if tt.wantErr != 0 {
			if out.GetError().GetCode() != uint32(tt.wantErr) {
				t.Errorf("%s: got %v, want error %v", tt.name, out, tt.wantErr)
			}
			continue
		}
		if a := out.GetSendAck(); a == nil || a.Seq != tt.wantSeq || a.ConversationId != g.ID {
			t.Errorf("%s: got %v, want send_ack seq %d", tt.name, out, tt.wantSeq)
		}
	}
	msgs, _, err := s.History(ctx, alice, store.MessageQuery{ConversationID: g.ID})
	if err != nil || len(msgs) != 4 || msgs[1].SenderID != bob.UserID || !msgs[1].Recalled || msgs[1].EditedAt.IsZero() {
		t.Fatalf("history = %+v, %v; want bob's message edited then recalled", msgs, err)
	}
}

// TestFriendEvents: every friend and block change reaches the hooks.
func TestFriendEvents(t *testing.T) {
	hooks := &fakeHooks{}
	s, _ := newTestService(t, func(c *Config) { c.Hooks = hooks })
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	steps := []func() error{
		func() error { _, err := s.RequestFriend(ctx, alice, "bob"); return err },
		func() error { return s.DeclineFriend(ctx, bob, "alice") },
		func() error { _, err := s.RequestFriend(ctx, alice, "bob"); return err },
		func() error { return s.AcceptFriend(ctx, bob, "alice") },
		func() error { return s.RemoveFriend(ctx, alice, "bob") },
		func() error { return s.Block(ctx, bob, "alice") },
		func() error { return s.Unblock(ctx, bob, "alice") },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	want := []string{"friend.requested", "friend.declined", "friend.requested", "friend.accepted",
		"friend.removed", "user.blocked", "user.unblocked"}
	if got := hooks.types(); !slices.Equal(got, want) {
		t.Errorf("hook events = %v, want %v", got, want)
	}
}

// barrierHooks holds each before-send call until n calls are in flight
// at once (or a few seconds pass) and records the most it saw.
type barrierHooks struct {
	fakeHooks
	n       int
	mu      sync.Mutex
	now     int
	most    int
	arrived chan struct{} // closed when n calls are in flight
	others  int           // calls other than m0's that returned
	last    chan struct{} // closed when they all did: m0's check may end
}

func (h *barrierHooks) BeforeAdd(ctx context.Context, a AddRequest) error { return nil }

func (h *barrierHooks) BeforeSend(ctx context.Context, m OutgoingMessage) error {
	h.mu.Lock()
	h.now++
	h.most = max(h.most, h.now)
	if h.now == h.n {
		close(h.arrived)
	}
	h.mu.Unlock()
	select {
	case <-h.arrived:
	case <-time.After(3 * time.Second):
	}
	h.mu.Lock()
	h.now--
	h.mu.Unlock()
	if m.Text == "m0" {
		// The first send's check ends last: after every other one.
		select {
		case <-h.last:
		case <-time.After(3 * time.Second):
		}
		return h.fakeHooks.BeforeSend(ctx, m)
	}
	defer func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.others++; h.others == h.n-1 {
			close(h.last)
		}
	}()
	return h.fakeHooks.BeforeSend(ctx, m)
}

// TestSlowBeforeSendHookOverlaps: the before-send calls of one
// connection's sends run at once, not one after another, and the sends
// still commit in the order they arrived.
func TestSlowBeforeSendHookOverlaps(t *testing.T) {
	const n = 8
	hooks := &barrierHooks{n: n, arrived: make(chan struct{}), last: make(chan struct{})}
	s, _ := newTestService(t, func(c *Config) { c.Hooks = hooks })
	alice := login(t, s, "alice", "", "").Identity
	login(t, s, "bob", "", "")
	conn := &clusterpb.ConnRef{Gateway: "gw1", Conn: 1, UserId: alice.UserID}
	answers := make(chan *magpiepb.Envelope, n)
	for i := range n {
		text := fmt.Sprintf("m%d", i)
		if i == 3 {
			text = "veto this" // refused by the hook; the others still commit in order
		}
		b, _ := proto.Marshal(&magpiepb.Envelope{Id: uint64(i + 1), Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{
			ToUser: "bob", Text: text, ClientMsgId: fmt.Sprintf("c%d", i)}}})
		s.handle(&clusterpb.Request{Conn: conn, Envelope: b}, func(b []byte) {
			var out magpiepb.Envelope
			if err := proto.Unmarshal(b, &out); err != nil {
				t.Error(err)
			}
			answers <- &out
		})
	}
	seqs := map[uint64]uint64{} // request id -> seq
	for range n {
		out := <-answers
		if out.Id == 4 {
			if out.GetError().GetCode() != uint32(wire.CodeForbidden) {
				t.Errorf("vetoed send answered %v", out)
			}
			continue
		}
		if out.GetSendAck() == nil {
			t.Fatalf("answer %v", out)
		}
		seqs[out.Id] = out.GetSendAck().Seq
	}
	hooks.mu.Lock()
	most := hooks.most
	hooks.mu.Unlock()
	if most != n {
		t.Errorf("at most %d before-send calls ran at once, want all %d", most, n)
	}
	want := uint64(1)
	for id := uint64(1); id <= n; id++ {
		if id == 4 {
			continue
		}
		if seqs[id] != want {
			t.Errorf("request %d got seq %d, want %d (arrival order)", id, seqs[id], want)
		}
		want++
	}
}

// Notices are pushed apart from messages, to the user concerned only, and
// encoded once for all their connections.
func TestNoticesReachTheUserConcerned(t *testing.T) {
	s, bus := newTestService(t, nil)
	ctx := context.Background()
	alice, bob := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity
	connect(bus, "gw1", 1, alice)
	connect(bus, "gw1", 2, bob)
	connect(bus, "gw2", 3, bob)
	if _, err := s.RequestFriend(ctx, alice, "bob"); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, d := range bus.noticesSeen() {
		if n := d.env.GetNotice(); n.GetType() != store.NoticeFriendRequested || n.GetActor() != "alice" || n.GetActorId() != alice.UserID || n.GetAt() == 0 {
			t.Errorf("notice %+v; want friend.requested from alice", n)
		}
		got = append(got, d.conns...)
	}
	if slices.Sort(got); !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("the notice went to connections %v, want bob's 2 and 3", got)
	}
}
