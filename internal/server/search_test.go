package server

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// Search end to end (SDK and HTTP) on SQLite and PostgreSQL: ranked hits
// with highlights, pages, Chinese, edits and recalls, and bad input.
func TestSearch(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testSearch(t, "") })
	t.Run("postgres", func(t *testing.T) { testSearch(t, postgresSchema(t)) })
}

func testSearch(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	newClient(t, n, "bob", "b", "ws", true)
	newClient(t, n, "carol", "c", "ws", true)
	for _, text := range []string{"Budget review on Friday", "明天开会讨论预算", "budget budget budget", "where is lunch"} {
		if _, err := alice.Send(ctx, client.SendRequest{ToUser: "bob", Text: text}); err != nil {
			t.Fatal(err)
		}
	}

	page, err := alice.Search(ctx, client.SearchQuery{Text: "BUDGET", Limit: 1})
	if err != nil || len(page.Hits) != 1 || page.NextCursor == "" {
		t.Fatalf("first page: %+v, %v; want one hit and a cursor", page, err)
	}
	if h := page.Hits[0]; h.Message.Text != "budget budget budget" || len(h.Highlights) != 3 || h.Highlights[1] != (client.Span{Start: 7, End: 13}) {
		t.Errorf("best hit = %q %v, want the three-budget message with three spans", h.Message.Text, h.Highlights)
	}
	next, err := alice.Search(ctx, client.SearchQuery{Text: "BUDGET", Limit: 1, Cursor: page.NextCursor})
	if err != nil || len(next.Hits) != 1 || next.Hits[0].Message.Text != "Budget review on Friday" || next.NextCursor != "" {
		t.Fatalf("second page: %+v, %v; want the other budget message, last page", next, err)
	}
	zh, err := alice.Search(ctx, client.SearchQuery{Text: "开会"})
	if err != nil || len(zh.Hits) != 1 || zh.Hits[0].Highlights[0] != (client.Span{Start: 2, End: 4}) {
		t.Fatalf("开会: %+v, %v; want the Chinese message, highlighted at 2..4", zh, err)
	}

	// Carol is in no conversation with these words.
	carol := signup(t, n, "carol", false)
	if r := carol.do("GET", "/v1/search?q=budget", nil); r.status != 200 || len(r.body["hits"].([]any)) != 0 {
		t.Errorf("carol: %d %v, want no hits", r.status, r.body)
	}
	conv := zh.Hits[0].Message.ConversationID
	if r := carol.do("GET", "/v1/search?q=budget&conversation_id="+url.QueryEscape(conv), nil); r.status != 403 && r.status != 404 {
		t.Errorf("carol in alice and bob's chat: %d %v, want a refusal", r.status, r.body)
	}

	// An edit changes what is found; a recall removes it.
	lunch, _ := alice.Search(ctx, client.SearchQuery{Text: "lunch"})
	if len(lunch.Hits) != 1 {
		t.Fatalf("lunch: %+v", lunch)
	}
	seq := lunch.Hits[0].Message.Seq
	if _, err := alice.Edit(ctx, conv, seq, "where is dinner"); err != nil {
		t.Fatal(err)
	}
	bob := signup(t, n, "bob", false)
	if r := bob.do("GET", "/v1/search?q=lunch", nil); len(r.body["hits"].([]any)) != 0 {
		t.Errorf("lunch after the edit: %v, want nothing", r.body)
	}
	if r := bob.do("GET", "/v1/search?q=dinner", nil); len(r.body["hits"].([]any)) != 1 {
		t.Errorf("dinner after the edit: %v, want the edited message", r.body)
	}
	if _, err := alice.Recall(ctx, conv, seq); err != nil {
		t.Fatal(err)
	}
	if r := bob.do("GET", "/v1/search?q=dinner", nil); len(r.body["hits"].([]any)) != 0 {
		t.Errorf("dinner after the recall: %v, want nothing", r.body)
	}

	for _, bad := range []string{"", "q=", "q=%20%20", "q=" + strings.Repeat("x", 257), "q=a+b+c+d+e+f+g+h+i",
		"q=budget&limit=x", "q=budget&cursor=zz", "q=budget&cursor=1001", "q=budget&conversation_id=" + strings.Repeat("x", 200)} {
		r := bob.do("GET", "/v1/search?"+bad, nil)
		if r.status != 400 {
			t.Errorf("GET /v1/search?%s: %d %v, want 400", bad, r.status, r.body)
		}
	}
}
