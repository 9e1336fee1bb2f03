package server

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// The points of docs/protocol.md and docs/api.md a client author tripped
// on, checked against the server over the real transports, so the docs
// cannot drift from what the code does.
func TestProtocolDocClaims(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	bobTok := loginToken(t, n, "bob")
	carolTok := loginToken(t, n, "carol")
	alice := authedRaw(t, n, loginToken(t, n, "alice"))
	authedRaw(t, n, carolTok) // online, and no contact of alice's
	send := func(id uint64, cmid, text string) *magpiepb.SendAck {
		t.Helper()
		got := alice.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: text, ClientMsgId: cmid}}})
		if got.GetSendAck() == nil {
			t.Fatalf("send %q: %v", text, got)
		}
		return got.GetSendAck()
	}
	const total = 520
	id := uint64(100)
	for i := range total {
		id++
		send(id, fmt.Sprintf("m%d", i), fmt.Sprintf("message %d", i))
	}
	conv := store2conv(t, n, bobTok)

	t.Run("sync: 500 per answer by default and at most", func(t *testing.T) {
		for _, limit := range []uint32{0, 100000} {
			id++
			res := alice.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Sync{Sync: &magpiepb.SyncRequest{Limit: limit}}}).GetSyncResult()
			if res == nil || len(res.Messages) != wire.MaxPageLimit || !res.More {
				t.Fatalf("sync{limit: %d}: %d messages, more %v; want %d and more", limit, len(res.GetMessages()), res.GetMore(), wire.MaxPageLimit)
			}
			if res.Messages[0].Peer != "bob" {
				t.Errorf("sync_result messages carry peer %q, want bob", res.Messages[0].Peer)
			}
		}
		id++
		cur := &magpiepb.Cursor{ConversationId: conv, Seq: 500}
		res := alice.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Sync{Sync: &magpiepb.SyncRequest{Cursors: []*magpiepb.Cursor{cur}}}}).GetSyncResult()
		if len(res.GetMessages()) != total-500 || res.GetMore() || res.Messages[0].Seq != 501 {
			t.Fatalf("sync after cursor 500: %d messages from %d, more %v", len(res.GetMessages()), res.GetMessages()[0].GetSeq(), res.GetMore())
		}
	})
	t.Run("history: the oldest page without after_seq and before_seq, the newest with before_seq above the last", func(t *testing.T) {
		id++
		h := alice.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{ConversationId: conv}}}).GetHistoryResult()
		if len(h.GetMessages()) != wire.DefaultPageLimit || h.Messages[0].Seq != 1 || h.LastSeq != total {
			t.Fatalf("history{}: %d messages from seq %d, last %d; want %d from 1", len(h.GetMessages()), h.GetMessages()[0].GetSeq(), h.GetLastSeq(), wire.DefaultPageLimit)
		}
		for _, m := range h.Messages {
			if m.Peer != "" {
				t.Fatalf("history_result message carries peer %q, want none", m.Peer)
			}
		}
		id++
		h = alice.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{ConversationId: conv, BeforeSeq: h.LastSeq + 1, Limit: 10}}}).GetHistoryResult()
		if len(h.GetMessages()) != 10 || h.Messages[9].Seq != total || h.Messages[0].Seq != total-9 {
			t.Fatalf("history{before_seq: last+1, limit 10}: %v", h)
		}
	})
	t.Run("a request without an id is carried out and answered with id 0", func(t *testing.T) {
		b, _ := proto.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "no id", ClientMsgId: "noid"}}})
		alice.w(wire.AppendFrame(nil, b))
		for {
			p, err := alice.r.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			var env magpiepb.Envelope
			if err := proto.Unmarshal(p, &env); err != nil {
				t.Fatal(err)
			}
			if a := env.GetSendAck(); a != nil {
				if env.Id != 0 || a.ClientMsgId != "noid" {
					t.Fatalf("answer %v, want send_ack with id 0", &env)
				}
				break
			}
		}
	})
	t.Run("send without client_msg_id is not idempotent", func(t *testing.T) {
		id++
		a := send(id, "", "again")
		id++
		b := send(id, "", "again")
		if a.Seq == b.Seq || b.Duplicate || a.ClientMsgId == "" || a.ClientMsgId == b.ClientMsgId {
			t.Fatalf("two sends without an id: %v and %v, want two messages with made-up ids", a, b)
		}
	})
	t.Run("READ implies DELIVERED", func(t *testing.T) {
		bob := authedRaw(t, n, bobTok)
		got := bob.call(&magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{ConversationId: conv, Kind: magpiepb.ReceiptKind_RECEIPT_KIND_READ, Seq: 7}}})
		if got.GetOk() == nil {
			t.Fatalf("receipt: %v", got)
		}
		r := (&httpUser{t: t, base: "http://" + n.HTTPAddr(), token: bobTok}).do("GET", "/v1/conversations", nil)
		convs, _ := r.body["conversations"].([]any)
		if len(convs) != 1 {
			t.Fatalf("bob's conversations: %v", r.body)
		}
		c := convs[0].(map[string]any)
		if c["read_seq"] != 7.0 || c["delivered_seq"] != 7.0 || c["id"] != conv {
			t.Fatalf("after READ 7: %v, want read and delivered 7 (and the conversation's id under id)", c)
		}
	})
	t.Run("online_result lists the online users I may see", func(t *testing.T) {
		// bob's connection of the READ test closed with it: bob comes back.
		authedRaw(t, n, bobTok)
		id++
		o := alice.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Online{Online: &magpiepb.OnlineRequest{}}}).GetOnlineResult()
		online := map[string]bool{}
		for _, u := range o.GetUsers() {
			online[u.Username] = true
		}
		// --online-visibility contacts (the default): bob shares a chat with
		// alice, carol is no contact of hers.
		if !online["alice"] || !online["bob"] || online["carol"] {
			t.Fatalf("online users %v, want alice and bob, not carol (no contact of alice's)", o.GetUsers())
		}
	})
	t.Run("a request before auth gets an error frame, not a kick, and the connection closes", func(t *testing.T) {
		c := rawTCP(t, n)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s := &rawSession{t: t, r: wire.NewReader(c, 0, 0), w: func(b []byte) { _, _ = c.Write(b) }}
		got := s.call(&magpiepb.Envelope{Id: 5, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{}}})
		if e := got.GetError(); e == nil || e.Code != uint32(wire.CodeNotAuthenticated) {
			t.Fatalf("got %v, want error{13} for id 5", got)
		}
		if _, err := s.r.ReadFrame(); err == nil {
			t.Fatal("the connection stayed open after error{13}")
		}
	})
}

// store2conv returns the id of bob's only conversation, over HTTP.
func store2conv(t *testing.T, n *Node, tok string) string {
	t.Helper()
	r := (&httpUser{t: t, base: "http://" + n.HTTPAddr(), token: tok}).do("GET", "/v1/conversations", nil)
	convs, _ := r.body["conversations"].([]any)
	if len(convs) != 1 {
		t.Fatalf("conversations: %v", r.body)
	}
	return convs[0].(map[string]any)["id"].(string)
}
