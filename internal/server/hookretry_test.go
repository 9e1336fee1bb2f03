package server

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/magpie-im/magpie/proto/magpiepb"
)

// vetoAfterFirst is a before-send hook that allows the first check of each
// client_msg_id and refuses every later one, counting the calls.
type vetoAfterFirst struct {
	mu   sync.Mutex
	seen map[string]int
}

func (h *vetoAfterFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var m struct {
		ClientMsgID string `json:"client_msg_id"`
	}
	_ = json.Unmarshal(b, &m)
	h.mu.Lock()
	h.seen[m.ClientMsgID]++
	n := h.seen[m.ClientMsgID]
	h.mu.Unlock()
	if n == 1 {
		_, _ = w.Write([]byte(`{"allow":true}`))
		return
	}
	_, _ = w.Write([]byte(`{"allow":false,"reason":"changed my mind"}`))
}

func (h *vetoAfterFirst) calls(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen[id]
}

// A retry of a stored client_msg_id gets the original ACK without asking
// the before-send hook again: a hook that now says no must not turn a
// committed (and delivered) message into a 403. Over HTTP, over the long
// connection, for private and group messages and for edits.
func TestRetryOfStoredMessageSkipsTheBeforeSendHook(t *testing.T) {
	hook := &vetoAfterFirst{seen: map[string]int{}}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.BeforeSendURL = srv.URL
	cfg.BeforeSendFailOpen = false
	n := startNode(t, cfg)
	signup(t, n, "bob", true)
	alice := signup(t, n, "alice", true)

	first := alice.do("POST", "/v1/messages", map[string]string{"to_user": "bob", "text": "hi", "client_msg_id": "h1"})
	if first.status != 200 {
		t.Fatalf("first send: %d %v", first.status, first.body)
	}
	for i := range 2 {
		again := alice.do("POST", "/v1/messages", map[string]string{"to_user": "bob", "text": "hi", "client_msg_id": "h1"})
		if again.status != 200 || again.num("seq") != first.num("seq") || again.str("conversation_id") != first.str("conversation_id") {
			t.Fatalf("HTTP retry %d: %d %v, want 200 with the original %v", i, again.status, again.body, first.body)
		}
	}
	if c := hook.calls("h1"); c != 1 {
		t.Fatalf("the hook was asked %d times about h1, want once", c)
	}
	// A new id is still put to the hook, which refuses its second check.
	if r := alice.do("POST", "/v1/messages", map[string]string{"to_user": "bob", "text": "x", "client_msg_id": "h2"}); r.status != 200 {
		t.Fatalf("new message: %d %v", r.status, r.body)
	}

	g := alice.do("POST", "/v1/groups", map[string]any{"name": "team", "members": []string{"bob"}})
	gid := g.str("id")
	if g.status != 201 && g.status != 200 || gid == "" {
		t.Fatalf("create group: %d %v", g.status, g.body)
	}
	conv := first.str("conversation_id")
	s := authedRaw(t, n, alice.token)
	sends := []*magpiepb.Envelope{
		{Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "tcp", ClientMsgId: "t1"}}},
		{Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToGroup: gid, Text: "all", ClientMsgId: "t2"}}},
		{Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{ConversationId: conv, Seq: first.num("seq"), Text: "hello", ClientMsgId: "t3"}}},
	}
	id := uint64(10)
	for _, env := range sends {
		var acks []*magpiepb.SendAck
		for range 2 {
			id++
			env.Id = id
			got := s.call(env)
			ack := got.GetSendAck()
			if ack == nil {
				t.Fatalf("%v: got %v, want send_ack (error %d is a veto of a stored message)", env, got, got.GetError().GetCode())
			}
			acks = append(acks, ack)
		}
		if acks[0].Seq != acks[1].Seq || acks[0].ConversationId != acks[1].ConversationId {
			t.Fatalf("%v: acks %v and %v, want the original twice", env, acks[0], acks[1])
		}
	}
	for _, cmid := range []string{"t1", "t2", "t3"} {
		if c := hook.calls(cmid); c != 1 {
			t.Errorf("the hook was asked %d times about %s, want once", c, cmid)
		}
	}
}
