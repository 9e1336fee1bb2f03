package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/push"
	"golang.org/x/crypto/bcrypt"
)

// adminCall makes one admin API call signed with key and secret.
func adminCall(t *testing.T, n *Node, method, path, key, secret string, body []byte) (int, map[string]any) {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nb := make([]byte, 16)
	_, _ = rand.Read(nb)
	nonce := hex.EncodeToString(nb)
	req, _ := http.NewRequest(method, "http://"+n.HTTPAddr()+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(push.HeaderKey, key)
	req.Header.Set(push.HeaderTimestamp, ts)
	req.Header.Set(push.HeaderNonce, nonce)
	req.Header.Set(push.HeaderSignature, push.Sign([]byte(secret), method, path, ts, nonce, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// A migration on both stores, as issue 12 asks: 10,000 users (two signed
// requests), 10,000 friendships (one) and 500 groups of 20 with roles
// (one) through the admin API; run again, nothing changes; the
// imported users see their groups and chat in them and with their
// friends. An app's admin key imports into its app only.
func TestAdminImportSocial(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAdminImportSocial(t, "") })
	t.Run("postgres", func(t *testing.T) { testAdminImportSocial(t, postgresSchema(t)) })
}

func testAdminImportSocial(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.RequireFriendship = true
	n := startNode(t, cfg)

	hash, err := bcrypt.GenerateFromPassword([]byte("password-shared"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	users := 10000 // in two requests of the most one takes
	if raceOn {
		users = 2000
	}
	for part := range 2 {
		var us []map[string]string
		for i := part * users / 2; i < (part+1)*users/2; i++ {
			us = append(us, map[string]string{"username": fmt.Sprintf("u%d", i), "password_hash": string(hash)})
		}
		if st, m := signedAdmin(t, n, "/v1/admin/users/import", mustJSON(map[string]any{"users": us}), adminSecret); st != 200 || m["created"] != float64(users/2) {
			t.Fatalf("import users, part %d = %d %v", part, st, m["created"])
		}
	}

	// Each user befriends the next (10,000 pairs, the most one request
	// takes); then four bad entries, and one pair too many.
	var fs []map[string]string
	for i := range users {
		fs = append(fs, map[string]string{"user": fmt.Sprintf("u%d", i), "friend": fmt.Sprintf("u%d", (i+1)%users)})
	}
	body := mustJSON(map[string]any{"friendships": fs})
	st, m := signedAdmin(t, n, "/v1/admin/friendships/import", body, adminSecret)
	if st != 200 || m["created"] != float64(users) || m["existing"] != float64(0) || m["failed"] != float64(0) {
		t.Fatalf("import friendships = %d created %v existing %v failed %v", st, m["created"], m["existing"], m["failed"])
	}
	bad := mustJSON(map[string]any{"friendships": []map[string]string{{"user": "u1", "friend": "U0"}, // the first pair again, reversed, another case
		{"user": "u1", "friend": "ghost"}, {"user": "u1", "friend": "u1"}, {"user": "bad name", "friend": "u1"}}})
	st, m = signedAdmin(t, n, "/v1/admin/friendships/import", bad, adminSecret)
	if st != 200 || m["created"] != float64(0) || m["existing"] != float64(1) || m["failed"] != float64(3) {
		t.Fatalf("import bad friendships = %d created %v existing %v failed %v", st, m["created"], m["existing"], m["failed"])
	}
	res := m["results"].([]any)
	for i, code := range map[int]string{1: "not_found", 2: "bad_request", 3: "bad_request"} {
		if e, _ := res[i].(map[string]any)["error"].(map[string]any); e["code"] != code {
			t.Errorf("friendship %d: %v, want %s", i, res[i], code)
		}
	}
	if st, m := signedAdmin(t, n, "/v1/admin/friendships/import", body, adminSecret); st != 200 || m["created"] != float64(0) || m["existing"] != float64(users) {
		t.Errorf("import friendships again = %d created %v existing %v", st, m["created"], m["existing"])
	}
	tooMany := make([]map[string]string, 10001)
	for i := range tooMany {
		tooMany[i] = fs[0]
	}
	if st, m := signedAdmin(t, n, "/v1/admin/friendships/import", mustJSON(map[string]any{"friendships": tooMany}), adminSecret); st != 413 {
		t.Errorf("10,001 friendships = %d %v, want 413", st, m)
	}

	// 500 groups of 20 (everyone): the owner, two admins, 17 members.
	var gs []map[string]any
	for g := range users / 20 {
		var members []map[string]string
		for k := 1; k < 20; k++ {
			role := "member"
			if k <= 2 {
				role = "admin"
			}
			members = append(members, map[string]string{"username": fmt.Sprintf("u%d", g*20+k), "role": role})
		}
		gs = append(gs, map[string]any{"id": fmt.Sprintf("old-%d", g), "name": fmt.Sprintf("team %d", g), "owner": fmt.Sprintf("u%d", g*20), "members": members})
	}
	gs = append(gs, map[string]any{"id": "old-0", "name": "twice", "owner": "u0"},
		map[string]any{"id": "ghostly", "name": "x", "owner": "u0", "members": []map[string]string{{"username": "ghost"}}},
		map[string]any{"id": "owner-role", "name": "x", "owner": "u0", "members": []map[string]string{{"username": "u1", "role": "owner"}}})
	body = mustJSON(map[string]any{"groups": gs})
	st, m = signedAdmin(t, n, "/v1/admin/groups/import", body, adminSecret)
	if st != 200 || m["created"] != float64(users/20) || m["failed"] != float64(3) {
		t.Fatalf("import groups = %d %v", st, m)
	}
	res = m["results"].([]any)
	first := res[0].(map[string]any)
	gid, _ := first["group_id"].(string)
	if first["id"] != "old-0" || first["status"] != "created" || !strings.HasPrefix(gid, "g_") {
		t.Fatalf("first group's result = %v", first)
	}
	st, again := signedAdmin(t, n, "/v1/admin/groups/import", body, adminSecret)
	if st != 200 || again["created"] != float64(0) || again["existing"] != float64(users/20) ||
		again["results"].([]any)[0].(map[string]any)["group_id"] != gid {
		t.Errorf("import groups again = %d %v", st, again)
	}

	// u0 owns team 0 with u1 and u2 as admins, and chats there and with
	// u1 (friends, which the server requires).
	u0 := loginAs(t, n, "", "u0", "password-shared")
	st, g := apiCall(t, n, "GET", "/v1/groups/"+gid, u0, "")
	if st != 200 || g["name"] != "team 0" || len(g["members"].([]any)) != 20 {
		t.Fatalf("u0's view of team 0 = %d %v", st, g)
	}
	for _, mem := range g["members"].([]any) {
		mm := mem.(map[string]any)
		want := map[string]string{"u0": "owner", "u1": "admin", "u2": "admin", "u3": "member"}[mm["username"].(string)]
		if want != "" && mm["role"] != want {
			t.Errorf("%s's role = %v, want %s", mm["username"], mm["role"], want)
		}
	}
	u1 := loginAs(t, n, "", "u1", "password-shared")
	if st, m := apiCall(t, n, "POST", "/v1/messages", u1, `{"to_user":"u0","text":"friends since the import"}`); st != 200 {
		t.Errorf("u1 sends to u0 (imported friends) = %d %v", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/messages", u0, `{"to_user":"u5","text":"not friends"}`); st == 200 {
		t.Errorf("u0 sends to u5 (not friends) = %d %v, want refused", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/messages", u0, `{"to_group":"`+gid+`","text":"hello imported team"}`); st != 200 {
		t.Errorf("u0 sends to team 0 = %d %v", st, m)
	}

	// An app's admin key: its own users only, and no "app" of its own choosing.
	st, app := signedAdmin(t, n, "/v1/admin/apps", []byte(`{"name":"acme"}`), adminSecret)
	if st != 201 {
		t.Fatalf("create app = %d %v", st, app)
	}
	key, secret := app["admin_key_id"].(string), app["admin_secret"].(string)
	one := mustJSON(map[string]any{"friendships": []map[string]string{{"user": "u0", "friend": "u1"}}})
	if st, m := adminCall(t, n, "POST", "/v1/admin/friendships/import", key, secret, one); st != 200 || m["failed"] != float64(1) {
		t.Errorf("acme imports a friendship of default users = %d %v, want not_found", st, m)
	}
	grp := mustJSON(map[string]any{"groups": []map[string]any{{"id": "old-0", "name": "x", "owner": "u0"}}})
	if st, m := adminCall(t, n, "POST", "/v1/admin/groups/import", key, secret, grp); st != 200 || m["failed"] != float64(1) {
		t.Errorf("acme imports a group of a default user = %d %v, want not_found", st, m)
	}
	named := mustJSON(map[string]any{"app": "default", "friendships": []map[string]string{{"user": "u0", "friend": "u1"}}})
	if st, m := adminCall(t, n, "POST", "/v1/admin/friendships/import", key, secret, named); st != 403 {
		t.Errorf("acme names the default app = %d %v, want 403", st, m)
	}
}

// loginAs logs a user in over HTTP and returns the token.
func loginAs(t *testing.T, n *Node, app, user, password string) string {
	t.Helper()
	st, m := apiCall(t, n, "POST", "/v1/login", "", string(mustJSON(map[string]string{"app": app, "username": user, "password": password})))
	if st != 200 {
		t.Fatalf("login %s = %d %v", user, st, m)
	}
	return m["token"].(string)
}
