package server

import (
	"testing"
)

// A reply is a text (or file) message whose ref_seq names the message it
// answers: history shows it on the reply, in private chats and groups; it
// cannot be scheduled or broadcast.
func TestReplyCarriesTheMessageItAnswers(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	alice := signup(t, n, "alice", true)
	bob := signup(t, n, "bob", true)

	q := bob.do("POST", "/v1/messages", map[string]any{"to_user": "alice", "text": "lunch?"})
	if q.status != 200 {
		t.Fatalf("bob's question: %d %v", q.status, q.body)
	}
	conv, seq := q.str("conversation_id"), q.num("seq")
	a := alice.do("POST", "/v1/messages", map[string]any{"to_user": "bob", "text": "yes", "reply_to": seq})
	if a.status != 200 {
		t.Fatalf("alice's reply: %d %v", a.status, a.body)
	}
	g := alice.do("POST", "/v1/groups", map[string]any{"name": "team", "members": []string{"bob"}})
	gid := g.str("id")
	gq := bob.do("POST", "/v1/messages", map[string]any{"to_group": gid, "text": "who is in?"})
	ga := alice.do("POST", "/v1/messages", map[string]any{"to_group": gid, "text": "me", "reply_to": gq.num("seq")})
	if gq.status != 200 || ga.status != 200 {
		t.Fatalf("group: %d %v / %d %v", gq.status, gq.body, ga.status, ga.body)
	}

	for _, c := range []struct {
		conv      string
		seq, want uint64
	}{{conv, a.num("seq"), seq}, {gid, ga.num("seq"), gq.num("seq")}} {
		h := bob.do("GET", "/v1/conversations/"+c.conv+"/messages?before_seq=100", nil)
		msgs, _ := h.body["messages"].([]any)
		var found bool
		for _, m := range msgs {
			m := m.(map[string]any)
			if m["seq"] == float64(c.seq) {
				found = true
				if m["ref_seq"] != float64(c.want) || m["kind"] != float64(0) {
					t.Errorf("%s: the reply reads %v, want kind 0 and ref_seq %v", c.conv, m, c.want)
				}
			} else if _, ok := m["ref_seq"]; ok && m["kind"] == float64(0) {
				t.Errorf("%s: a message that is no reply has a ref_seq: %v", c.conv, m)
			}
		}
		if !found {
			t.Errorf("%s: seq %v not in history %v", c.conv, c.seq, h.body)
		}
	}

	for _, body := range []map[string]any{
		{"to_user": "bob", "text": "later", "reply_to": seq, "send_at": 4102444800000},
		{"broadcast": true, "text": "all", "reply_to": seq},
	} {
		if r := alice.do("POST", "/v1/messages", body); r.status != 400 {
			t.Errorf("%v: %d %v, want 400", body, r.status, r.body)
		}
	}
}
