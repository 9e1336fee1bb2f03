package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// Send "oops", edit it to "fixed", recall it: no reader may still see
// "fixed" — not over HTTP history, not in the SDK's history (what the
// terminal's :history shows), not in a sync to a device that was never
// online (the edit messages are messages of their own).
func TestRecallAfterEditLeaksNothing(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	bob, _ := newClient(t, n, "bob", "b1", "ws", true)
	_ = bob.Close()
	ack, err := alice.Send(ctx, client.SendRequest{ToUser: "bob", Text: "oops"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Edit(ctx, ack.ConversationID, ack.Seq, "fixed"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Recall(ctx, ack.ConversationID, ack.Seq); err != nil {
		t.Fatal(err)
	}

	bobHTTP := signup(t, n, "bob", false)
	r := bobHTTP.do("GET", "/v1/conversations/"+ack.ConversationID+"/messages", nil)
	msgs, _ := r.body["messages"].([]any)
	if r.status != 200 || len(msgs) != 3 {
		t.Fatalf("HTTP history: %d %v, want 3 messages", r.status, r.body)
	}
	for _, m := range msgs {
		if text, _ := m.(map[string]any)["text"].(string); text != "" {
			t.Errorf("HTTP history shows %q after the recall: %v", text, m)
		}
	}

	hist, err := alice.History(ctx, ack.ConversationID, client.HistoryQuery{})
	if err != nil || len(hist) != 3 {
		t.Fatalf("SDK history: %v, %v; want 3 messages", hist, err)
	}
	for _, m := range hist {
		if m.Text != "" {
			t.Errorf("SDK history shows %q (seq %d) after the recall", m.Text, m.Seq)
		}
	}

	// A device that starts from no cursors syncs the whole conversation.
	_, box := deviceClient(t, n, "bob", "fresh", &memCursors{m: map[string]uint64{}})
	waitFor(t, "the fresh device to sync 3 messages", func() bool { return len(box.texts()) >= 3 })
	if got := strings.Join(box.texts(), "|"); got != "||" {
		t.Errorf("fresh device synced texts %q, want all three blank", got)
	}
}
