package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// Moderation through the admin API on both stores: a message removed by
// the admin reaches the recipient's device as a recall that says so and
// reads as removed in history; a disabled user is kicked at once and
// cannot log in until enabled; users page and match; a deleted user's
// messages are erased or kept as asked and the name is free again; an
// app's admin key reaches its own users and conversations only.
func TestAdminModeration(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAdminModeration(t, "") })
	t.Run("postgres", func(t *testing.T) { testAdminModeration(t, postgresSchema(t)) })
}

func testAdminModeration(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.Heartbeat = time.Second
	n := startNode(t, cfg)
	ctx := context.Background()
	admin := func(path string, body any) (int, map[string]any) {
		t.Helper()
		return signedAdmin(t, n, path, mustJSON(body), adminSecret)
	}

	alice, _ := newClient(t, n, "alice", "laptop", "tcp", true)
	_, bobBox := newClient(t, n, "bob", "phone", "ws", true)
	newClient(t, n, "carol", "c", "ws", true)
	ack, err := alice.SendText(ctx, "bob", "spam spam")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's message", func() bool { return len(bobBox.texts()) == 1 })

	// Removal: a recall with the admin's event, live and in history.
	st, m := admin("/v1/admin/messages/remove", map[string]any{"conversation_id": ack.ConversationID, "seq": ack.Seq})
	if st != 200 {
		t.Fatalf("remove = %d %v", st, m)
	}
	waitFor(t, "the admin's recall at bob's device", func() bool {
		bobBox.mu.Lock()
		defer bobBox.mu.Unlock()
		for _, msg := range bobBox.msgs {
			if msg.Kind == client.KindRecall && msg.RefSeq == ack.Seq && msg.Event != nil && msg.Event.Type == "removed_by_admin" {
				return true
			}
		}
		return false
	})
	bobTok := loginAs(t, n, "", "bob", "password-bob")
	_, hist := apiCall(t, n, "GET", "/v1/conversations/"+ack.ConversationID+"/messages", bobTok, "")
	first := hist["messages"].([]any)[0].(map[string]any)
	if first["text"] != "" || first["recalled"] != true || first["event"].(map[string]any)["type"] != "removed_by_admin" {
		t.Errorf("the removed message in history = %v", first)
	}
	if st, m := admin("/v1/admin/messages/remove", map[string]any{"conversation_id": ack.ConversationID, "seq": ack.Seq}); st != 404 {
		t.Errorf("remove again = %d %v, want 404", st, m)
	}

	// Disable: bob's connection is kicked at once; no login until enabled.
	raw := authedRaw(t, n, bobTok)
	raw.keepAlive(300 * time.Millisecond)
	if st, m := admin("/v1/admin/users/disable", map[string]any{"username": "bob"}); st != 200 || m["disabled"] != true {
		t.Fatalf("disable bob = %d %v", st, m)
	}
	if k := raw.readUntilKick(); k == nil {
		t.Error("bob's connection was not kicked")
	}
	if st, _ := apiCall(t, n, "GET", "/v1/conversations", bobTok, ""); st != 401 {
		t.Errorf("bob's token after the disable = %d, want 401", st)
	}
	if st, m := apiCall(t, n, "POST", "/v1/login", "", `{"username":"bob","password":"password-bob"}`); st != 403 || m["error"].(map[string]any)["message"] != "account disabled" {
		t.Errorf("bob logs in while disabled = %d %v, want 403 account disabled", st, m)
	}
	if st, m := admin("/v1/admin/users/disable", map[string]any{"username": "bob", "disabled": false}); st != 200 || m["disabled"] != false {
		t.Fatalf("enable bob = %d %v", st, m)
	}
	loginAs(t, n, "", "bob", "password-bob")

	// List: pages of two, and a match.
	for i := range 3 {
		if st, m := apiCall(t, n, "POST", "/v1/users", "", fmt.Sprintf(`{"username":"zed%d","password":"password-zed"}`, i)); st != 201 {
			t.Fatalf("register zed%d = %d %v", i, st, m)
		}
	}
	var names []any
	cursor := ""
	for range 10 {
		st, page := admin("/v1/admin/users/list", map[string]any{"limit": 2, "cursor": cursor})
		if st != 200 {
			t.Fatalf("list = %d %v", st, page)
		}
		for _, u := range page["users"].([]any) {
			names = append(names, u.(map[string]any)["username"])
		}
		if cursor = page["next_cursor"].(string); cursor == "" {
			break
		}
	}
	if fmt.Sprint(names) != "[alice bob carol zed0 zed1 zed2]" {
		t.Errorf("users by pages of two = %v", names)
	}
	if st, page := admin("/v1/admin/users/list", map[string]any{"query": "ZED"}); st != 200 || len(page["users"].([]any)) != 3 {
		t.Errorf("users matching ZED = %d %v", st, page)
	}

	// Delete carol erasing her messages, zed0 keeping his.
	carolTok := loginAs(t, n, "", "carol", "password-carol")
	st, sent := apiCall(t, n, "POST", "/v1/messages", carolTok, `{"to_user":"alice","text":"from carol"}`)
	if st != 200 {
		t.Fatal(sent)
	}
	zedTok := loginAs(t, n, "", "zed0", "password-zed")
	if st, m := apiCall(t, n, "POST", "/v1/messages", zedTok, `{"to_user":"alice","text":"from zed"}`); st != 200 {
		t.Fatal(m)
	}
	aliceTok := loginAs(t, n, "", "alice", "password-alice")
	st, team := apiCall(t, n, "POST", "/v1/groups", aliceTok, `{"name":"team","members":["bob","carol"]}`)
	if st != 201 {
		t.Fatalf("create team = %d %v", st, team)
	}
	st, own := apiCall(t, n, "POST", "/v1/groups", carolTok, `{"name":"carol's","members":["alice"]}`)
	if st != 201 {
		t.Fatalf("carol creates a group = %d %v", st, own)
	}
	if st, m := admin("/v1/admin/users/delete", map[string]any{"username": "carol", "erase_messages": true}); st != 200 || m["deleted"] != true {
		t.Fatalf("delete carol = %d %v", st, m)
	}
	if st, m := admin("/v1/admin/users/delete", map[string]any{"username": "zed0"}); st != 200 {
		t.Fatalf("delete zed0 = %d %v", st, m)
	}
	if st, _ := apiCall(t, n, "GET", "/v1/conversations", carolTok, ""); st != 401 {
		t.Errorf("carol's token after the delete = %d, want 401", st)
	}
	_, g := apiCall(t, n, "GET", "/v1/groups/"+team["id"].(string), aliceTok, "")
	var members []string
	for _, mem := range g["members"].([]any) {
		members = append(members, mem.(map[string]any)["username"].(string))
	}
	if fmt.Sprint(members) != "[alice bob]" {
		t.Errorf("team's members after carol's deletion = %v, want [alice bob]", members)
	}
	if st, g := apiCall(t, n, "GET", "/v1/groups/"+own["id"].(string), aliceTok, ""); st != 200 || len(g["members"].([]any)) != 2 {
		t.Errorf("the group the deleted carol owns = %d %v, want it kept with its two members", st, g)
	}
	_, convs := apiCall(t, n, "GET", "/v1/conversations", aliceTok, "")
	texts := map[string]string{}
	for _, c := range convs["conversations"].([]any) {
		c := c.(map[string]any)
		if last, ok := c["last_message"].(map[string]any); ok {
			texts[c["peer"].(string)] = last["text"].(string)
		}
	}
	if texts["carol"] != "" || texts["zed0"] != "from zed" {
		t.Errorf("alice's last messages after the deletes = %v; want carol's erased and zed0's kept", texts)
	}
	if st, m := apiCall(t, n, "GET", "/v1/users/carol", aliceTok, ""); st != 404 {
		t.Errorf("look up the deleted carol = %d %v, want 404", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/users", "", `{"username":"carol","password":"password-new"}`); st != 201 {
		t.Errorf("register carol again = %d %v, want 201 (the name is free)", st, m)
	}
	if st, m := admin("/v1/admin/users/delete", map[string]any{"username": "ghost"}); st != 404 {
		t.Errorf("delete a user that does not exist = %d %v", st, m)
	}

	// Another app's admin key sees none of it.
	st, app := admin("/v1/admin/apps", map[string]any{"name": "acme"})
	if st != 201 {
		t.Fatalf("create app = %d %v", st, app)
	}
	key, secret := app["admin_key_id"].(string), app["admin_secret"].(string)
	for _, c := range []struct {
		path string
		body any
	}{
		{"/v1/admin/users/disable", map[string]any{"username": "alice"}},
		{"/v1/admin/users/delete", map[string]any{"username": "alice"}},
		{"/v1/admin/messages/remove", map[string]any{"conversation_id": sent["conversation_id"], "seq": 1}},
	} {
		if st, m := adminCall(t, n, "POST", c.path, key, secret, mustJSON(c.body)); st != 404 {
			t.Errorf("acme's %s on the default app = %d %v, want 404", c.path, st, m)
		}
	}
	if st, page := adminCall(t, n, "POST", "/v1/admin/users/list", key, secret, []byte(`{}`)); st != 200 || len(page["users"].([]any)) != 0 {
		t.Errorf("acme lists users = %d %v, want none", st, page)
	}
	if st, _ := apiCall(t, n, "GET", "/v1/conversations", aliceTok, ""); st != 200 {
		t.Errorf("alice after acme's attempts = %d, want 200", st)
	}
}
