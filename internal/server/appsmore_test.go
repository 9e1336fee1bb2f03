package server

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"

	"github.com/magpie-im/magpie/proto/magpiepb"
)

// The rest of what two apps must not see of each other (webhooks:
// TestAppWebhooksAreIsolated): a file of one app is not downloaded from
// the other, the online list (every user of the app, by
// --online-visibility all) holds only the caller's app, a sync naming the
// other app's conversation returns nothing of it, and a search finds only
// the caller's own messages. Each check also shows the same call working
// inside the app, so a refusal is not a broken call. On both stores.
func TestAppsIsolatedFilesPresenceSyncSearch(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAppsIsolatedMore(t, "") })
	t.Run("postgres", func(t *testing.T) { testAppsIsolatedMore(t, postgresSchema(t)) })
}

func testAppsIsolatedMore(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.OnlineVisibility = "all"
	n := startNode(t, cfg)
	if st, m := signedAdmin(t, n, "/v1/admin/apps", []byte(`{"name":"acme"}`), adminSecret); st != 201 {
		t.Fatalf("create app = %d %v", st, m)
	}
	token := func(app, user string) string {
		t.Helper()
		body := string(mustJSON(map[string]string{"app": app, "username": user, "password": "password-" + user}))
		if st, m := apiCall(t, n, "POST", "/v1/users", "", body); st != 201 {
			t.Fatalf("register %s/%s = %d %v", app, user, st, m)
		}
		return loginAs(t, n, app, user, "password-"+user)
	}
	alice, bob := token("", "alice"), token("", "bob")
	mallory, ann := token("acme", "mallory"), token("acme", "ann")

	// Files.
	fileID := uploadAs(t, n, alice, "plan.txt", "the secret plan")
	st, sent := apiCall(t, n, "POST", "/v1/messages", alice, `{"to_user":"bob","file_id":"`+fileID+`","text":"secret plan attached"}`)
	if st != 200 {
		t.Fatalf("alice sends the file = %d %v", st, sent)
	}
	if st, body := downloadAs(t, n, bob, fileID); st != 200 || body != "the secret plan" {
		t.Errorf("bob downloads alice's file = %d %q", st, body)
	}
	if st, body := downloadAs(t, n, mallory, fileID); st == 200 || body == "the secret plan" {
		t.Errorf("mallory (acme) downloads the default app's file = %d %q", st, body)
	}
	if st, m := apiCall(t, n, "POST", "/v1/messages", mallory, `{"to_user":"ann","file_id":"`+fileID+`"}`); st == 200 {
		t.Errorf("mallory forwards the default app's file to ann = %d %v", st, m)
	}

	// Presence: every one of the four is online on a connection.
	for _, tok := range []string{alice, bob, mallory, ann} {
		s := authedRaw(t, n, tok)
		s.keepAlive(cfg.Heartbeat / 2)
	}
	names := func(tok string) map[string]bool {
		t.Helper()
		st, m := apiCall(t, n, "GET", "/v1/users/online", tok, "")
		if st != 200 {
			t.Fatalf("online = %d %v", st, m)
		}
		out := map[string]bool{}
		for _, u := range m["users"].([]any) {
			out[u.(map[string]any)["username"].(string)] = true
		}
		return out
	}
	waitFor(t, "ann online for mallory", func() bool { return names(mallory)["ann"] })
	if on := names(mallory); on["alice"] || on["bob"] {
		t.Errorf("mallory's online list = %v, want acme's users only", on)
	}
	waitFor(t, "bob online for alice", func() bool { return names(alice)["bob"] })
	if on := names(alice); on["mallory"] || on["ann"] {
		t.Errorf("alice's online list = %v, want the default app's users only", on)
	}

	// Sync naming the other app's conversation.
	conv := sent["conversation_id"].(string)
	syncOf := func(tok string) []*magpiepb.Message {
		s := authedRaw(t, n, tok)
		got := s.call(&magpiepb.Envelope{Id: 7, Body: &magpiepb.Envelope_Sync{Sync: &magpiepb.SyncRequest{
			Cursors: []*magpiepb.Cursor{{ConversationId: conv, Seq: 0}}}}})
		var out []*magpiepb.Message
		for _, m := range got.GetSyncResult().GetMessages() {
			if m.GetConversationId() == conv {
				out = append(out, m)
			}
		}
		return out
	}
	if got := syncOf(bob); len(got) != 1 {
		t.Errorf("bob's sync of his chat with alice = %d messages, want 1", len(got))
	}
	if got := syncOf(mallory); len(got) != 0 {
		t.Errorf("mallory's sync naming alice and bob's chat = %v, want nothing", got)
	}

	// Search: "secret" is in both apps; each sees its own.
	if st, m := apiCall(t, n, "POST", "/v1/messages", ann, `{"to_user":"mallory","text":"acme secret too"}`); st != 200 {
		t.Fatalf("ann sends = %d %v", st, m)
	}
	hits := func(tok string) []string {
		t.Helper()
		st, m := apiCall(t, n, "GET", "/v1/search?q="+url.QueryEscape("secret"), tok, "")
		if st != 200 {
			t.Fatalf("search = %d %v", st, m)
		}
		var out []string
		for _, h := range m["hits"].([]any) {
			out = append(out, h.(map[string]any)["message"].(map[string]any)["text"].(string))
		}
		return out
	}
	if got := hits(mallory); len(got) != 1 || got[0] != "acme secret too" {
		t.Errorf("mallory's search for secret = %q, want acme's message only", got)
	}
	if got := hits(bob); len(got) != 1 || got[0] != "secret plan attached" {
		t.Errorf("bob's search for secret = %q, want alice's message only", got)
	}
}

// uploadAs posts a file as the token's user and returns its id.
func uploadAs(t *testing.T, n *Node, tok, name, content string) string {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write([]byte(content))
	_ = mw.Close()
	req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil || resp.StatusCode != 201 && resp.StatusCode != 200 {
		t.Fatalf("upload = %d %v %v", resp.StatusCode, m, err)
	}
	return m["id"].(string)
}

// downloadAs fetches a file as the token's user.
func downloadAs(t *testing.T, n *Node, tok, id string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/v1/files/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
