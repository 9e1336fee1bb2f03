package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// apiCall makes one HTTP API call and decodes the JSON answer.
func apiCall(t *testing.T, n *Node, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+n.HTTPAddr()+path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doJSON(t, req)
}

// doJSON sends req and decodes its JSON answer (nil if there is none).
func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// Two apps on one server: the same username in both is two users, and
// a user of one app cannot find, message, read, join or push into the
// other. On both stores.
func TestAppsAreIsolated(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAppsAreIsolated(t, "") })
	t.Run("postgres", func(t *testing.T) { testAppsAreIsolated(t, postgresSchema(t)) })
}

func testAppsAreIsolated(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	n := startNode(t, cfg)

	st, app := signedAdmin(t, n, "/v1/admin/apps", []byte(`{"name":"acme"}`), adminSecret)
	if st != 201 || app["name"] != "acme" || app["push_secret"] == "" {
		t.Fatalf("create app = %d %v", st, app)
	}
	token := func(appName, user string) string {
		t.Helper()
		body := `{"app":"` + appName + `","username":"` + user + `","password":"password-` + user + `"}`
		if st, m := apiCall(t, n, "POST", "/v1/users", "", body); st != 201 {
			t.Fatalf("register %s/%s = %d %v", appName, user, st, m)
		}
		st, m := apiCall(t, n, "POST", "/v1/login", "", body)
		if st != 200 {
			t.Fatalf("login %s/%s = %d %v", appName, user, st, m)
		}
		return m["token"].(string)
	}
	alice, bob := token("", "alice"), token("", "bob")
	acmeAlice, mallory := token("acme", "alice"), token("acme", "mallory")
	if st, m := apiCall(t, n, "POST", "/v1/users", "", `{"app":"nope","username":"x1","password":"password-x"}`); st != 404 {
		t.Errorf("register in an unknown app = %d %v, want 404", st, m)
	}

	// Sends and lookups by name stay in the caller's app.
	if st, m := apiCall(t, n, "GET", "/v1/users/bob", mallory, ""); st != 404 {
		t.Errorf("mallory looks up bob = %d %v, want 404", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/messages", mallory, `{"to_user":"bob","text":"hi"}`); st != 404 {
		t.Errorf("mallory sends to bob = %d %v, want 404", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/friends/requests", mallory, `{"username":"bob"}`); st != 404 {
		t.Errorf("mallory asks bob to be friends = %d %v, want 404", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/messages", mallory, `{"to_user":"alice","text":"for acme alice"}`); st != 200 {
		t.Fatalf("mallory sends to alice = %d %v", st, m)
	}
	st, sent := apiCall(t, n, "POST", "/v1/messages", alice, `{"to_user":"bob","text":"secret"}`)
	if st != 200 {
		t.Fatalf("alice sends to bob = %d %v", st, sent)
	}
	_, convs := apiCall(t, n, "GET", "/v1/conversations", alice, "")
	if list, _ := convs["conversations"].([]any); len(list) != 1 {
		t.Errorf("default alice's conversations = %v, want bob's only (not acme alice's)", convs)
	}
	_, convs = apiCall(t, n, "GET", "/v1/conversations", acmeAlice, "")
	if list, _ := convs["conversations"].([]any); len(list) != 1 {
		t.Errorf("acme alice's conversations = %v, want mallory's only", convs)
	}
	conv := sent["conversation_id"].(string)
	if st, m := apiCall(t, n, "GET", "/v1/conversations/"+conv+"/messages", mallory, ""); st == 200 {
		t.Errorf("mallory reads alice and bob's chat = %d %v", st, m)
	}

	// Groups are found by id, so their app is checked.
	st, g := apiCall(t, n, "POST", "/v1/groups", bob, `{"name":"open","join_policy":"open"}`)
	if st != 201 && st != 200 {
		t.Fatalf("create group = %d %v", st, g)
	}
	gid := g["id"].(string)
	if st, m := apiCall(t, n, "GET", "/v1/groups/"+gid, alice, ""); st != 200 {
		t.Errorf("default alice views the open group = %d %v, want 200", st, m)
	}
	if st, m := apiCall(t, n, "GET", "/v1/groups/"+gid, mallory, ""); st != 404 {
		t.Errorf("mallory views the other app's open group = %d %v, want 404", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/groups/"+gid+"/join", mallory, ""); st != 404 {
		t.Errorf("mallory joins the other app's open group = %d %v, want 404", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/messages", mallory, `{"to_group":"`+gid+`","text":"x"}`); st == 200 {
		t.Errorf("mallory sends to the other app's group = %d %v", st, m)
	}

	// The app's push key reaches its own users only.
	pushKey, pushSecret := app["push_key_id"].(string), app["push_secret"].(string)
	base := "http://" + n.HTTPAddr()
	if st, m := signedPush(t, base, pushKey, pushSecret, `{"to_users":["bob"],"text":"x","transient":true}`); st != 404 {
		t.Errorf("acme's push to bob = %d %v, want 404", st, m)
	}
	if st, m := signedPush(t, base, pushKey, pushSecret, `{"to_group":"`+gid+`","text":"x","transient":true}`); st != 404 {
		t.Errorf("acme's push to the default app's group = %d %v, want 404", st, m)
	}
	if st, m := signedPush(t, base, pushKey, pushSecret, `{"to_users":["mallory"],"text":"x","transient":true}`); st != 200 {
		t.Errorf("acme's push to mallory = %d %v, want 200", st, m)
	}
}
