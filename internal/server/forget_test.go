package server

import (
	"testing"

	"github.com/magpie-im/magpie/internal/config"
)

// A user deleted through one logic node is forgotten by every other at
// once: a send to its name through the second node, which had the name
// cached from an earlier send, is refused as soon as the delete answers
// (before the fix it was stored for nobody until that node restarted).
func TestDeletedUserRefusedOnEveryLogicNode(t *testing.T) {
	logics, _ := clusterWithConfig(t, 2, postgresSchema(t), func(cfg *config.Config) {
		cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	}, "gw-a")
	a, b := logics[0], logics[1]
	for _, u := range []string{"alice", "carol"} {
		if st, m := apiCall(t, a, "POST", "/v1/users", "", `{"username":"`+u+`","password":"password123"}`); st != 201 {
			t.Fatalf("register %s = %d %v", u, st, m)
		}
	}
	aliceTok := loginAs(t, b, "", "alice", "password123")
	// The first send puts carol in b's names cache.
	if st, m := apiCall(t, b, "POST", "/v1/messages", aliceTok, `{"to_user":"carol","text":"before"}`); st != 200 {
		t.Fatalf("send to carol through b = %d %v", st, m)
	}
	if st, m := signedAdmin(t, a, "/v1/admin/users/delete", mustJSON(map[string]any{"username": "carol"}), adminSecret); st != 200 {
		t.Fatalf("delete carol through a = %d %v", st, m)
	}
	for i, n := range []*Node{b, a} {
		st, m := apiCall(t, n, "POST", "/v1/messages", aliceTok, `{"to_user":"carol","text":"after"}`)
		if st != 404 {
			t.Errorf("send to the deleted carol through node %d = %d %v, want 404", i, st, m)
		}
	}
}

// An app's keys rotated through one logic node stop working on the other
// at once: before the fix, the other's app list kept the old key for up
// to 5 seconds.
func TestRotatedAppKeysRefusedOnEveryLogicNode(t *testing.T) {
	logics, _ := clusterWithConfig(t, 2, postgresSchema(t), func(cfg *config.Config) {
		cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	}, "gw-a")
	a, b := logics[0], logics[1]
	st, app := signedAdmin(t, a, "/v1/admin/apps", []byte(`{"name":"acme"}`), adminSecret)
	if st != 201 {
		t.Fatalf("create acme through a = %d %v", st, app)
	}
	list := []byte(`{}`)
	key, secret := app["admin_key_id"].(string), app["admin_secret"].(string)
	// b loads the app list with acme's first key in it.
	if st, m := adminCall(t, b, "POST", "/v1/admin/users/list", key, secret, list); st != 200 {
		t.Fatalf("acme's key on b = %d %v", st, m)
	}
	st, rotated := signedAdmin(t, a, "/v1/admin/apps/keys", []byte(`{"name":"acme"}`), adminSecret)
	if st != 200 {
		t.Fatalf("rotate acme's keys through a = %d %v", st, rotated)
	}
	if st, m := adminCall(t, b, "POST", "/v1/admin/users/list", key, secret, list); st != 401 {
		t.Errorf("acme's old key on b after the rotation = %d %v, want 401", st, m)
	}
	if st, m := adminCall(t, b, "POST", "/v1/admin/users/list", rotated["admin_key_id"].(string), rotated["admin_secret"].(string), list); st != 200 {
		t.Errorf("acme's new key on b = %d %v", st, m)
	}
}
