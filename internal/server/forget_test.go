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
