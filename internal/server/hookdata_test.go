package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// A message event's data names the message it refers to: a reply's
// message.stored carries ref_seq (the message replied to), an edit's
// message.edited and a recall's message.recalled the message changed
// (docs/api.md, "Webhooks").
func TestMessageEventsCarryRefSeq(t *testing.T) {
	type event struct {
		Type string `json:"type"`
		Data struct {
			ConversationID string `json:"conversation_id"`
			Seq            uint64 `json:"seq"`
			RefSeq         uint64 `json:"ref_seq"`
			Text           string `json:"text"`
			ToUser         string `json:"to_user"`
		} `json:"data"`
	}
	var mu sync.Mutex
	var events []event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var ev event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Errorf("webhook body %q: %v", b, err)
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	defer hook.Close()

	cfg := testConfig(t, t.TempDir())
	cfg.WebhookURLs = []string{hook.URL}
	cfg.WebhookSecret = "webhook-secret-0123456789"
	n := startNode(t, cfg)
	alice, _ := newClient(t, n, "alice", "laptop", "tcp", true)
	newClient(t, n, "bob", "phone", "tcp", true)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first, err := alice.SendText(ctx, "bob", "lunch?")
	if err != nil {
		t.Fatal(err)
	}
	reply, err := alice.Send(ctx, client.SendRequest{ToUser: "bob", Text: "at noon", ReplyTo: first.Seq})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx, first.ConversationID, first.Seq, "lunch at 12?"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Recall(ctx, reply.ConversationID, reply.Seq); err != nil {
		t.Fatal(err)
	}

	var got map[string]event
	waitFor(t, "four message events", func() bool {
		mu.Lock()
		defer mu.Unlock()
		got = map[string]event{}
		for _, ev := range events {
			key := ev.Type
			if ev.Type == "message.stored" && ev.Data.RefSeq != 0 {
				key = "reply"
			}
			got[key] = ev
		}
		return len(got) == 4
	})
	if ev := got["message.stored"]; ev.Data.Seq != first.Seq || ev.Data.RefSeq != 0 || ev.Data.ToUser != "bob" {
		t.Errorf("the first message's event: %+v", ev)
	}
	if ev := got["reply"]; ev.Data.Seq != reply.Seq || ev.Data.RefSeq != first.Seq || ev.Data.Text != "at noon" {
		t.Errorf("the reply's message.stored: %+v, want ref_seq %d", ev, first.Seq)
	}
	if ev := got["message.edited"]; ev.Data.RefSeq != first.Seq || ev.Data.Text != "lunch at 12?" {
		t.Errorf("message.edited: %+v, want ref_seq %d", ev, first.Seq)
	}
	if ev := got["message.recalled"]; ev.Data.RefSeq != reply.Seq {
		t.Errorf("message.recalled: %+v, want ref_seq %d", ev, reply.Seq)
	}
}
