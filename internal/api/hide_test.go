package api

import (
	"net/http"
	"testing"
)

func registerAndLogin(t *testing.T, h http.Handler, name string) string {
	t.Helper()
	do(h, "POST", "/v1/users", "", `{"username":"`+name+`","password":"secret-`+name+`"}`)
	code, out := do(h, "POST", "/v1/login", "", `{"username":"`+name+`","password":"secret-`+name+`"}`)
	if code != 200 {
		t.Fatalf("login %s: %d %v", name, code, out)
	}
	return out["token"].(string)
}

func TestHideConversationHTTP(t *testing.T) {
	h := newTestAPI(t)
	alice, bob, carol := registerAndLogin(t, h, "alice"), registerAndLogin(t, h, "bob"), registerAndLogin(t, h, "carol")
	do(h, "POST", "/v1/messages", alice, `{"to_user":"bob","text":"one"}`)
	do(h, "POST", "/v1/messages", bob, `{"to_user":"alice","text":"two"}`)
	count := func(tok string) int {
		_, out := do(h, "GET", "/v1/conversations", tok, "")
		return len(out["conversations"].([]any))
	}
	history := func(tok string) int {
		code, out := do(h, "GET", "/v1/conversations/p_1_2/messages?before_seq=1000", tok, "")
		if code != 200 {
			t.Fatalf("history: %d %v", code, out)
		}
		return len(out["messages"].([]any))
	}

	if code, out := do(h, "DELETE", "/v1/conversations/p_1_2", alice, ""); code != 200 || out["hidden_seq"] != 2.0 || out["cleared_seq"] != nil {
		t.Fatalf("hide: %d %v", code, out)
	}
	if count(alice) != 0 || count(bob) != 1 || history(alice) != 2 {
		t.Fatalf("after hiding: alice lists %d, bob %d, alice's history %d; want 0, 1, 2", count(alice), count(bob), history(alice))
	}
	do(h, "POST", "/v1/messages", bob, `{"to_user":"alice","text":"three"}`)
	if count(alice) != 1 {
		t.Fatalf("a new message did not bring the conversation back")
	}

	if code, out := do(h, "DELETE", "/v1/conversations/p_1_2?clear=true", alice, ""); code != 200 || out["cleared_seq"] != 3.0 {
		t.Fatalf("clear: %d %v", code, out)
	}
	if count(alice) != 0 || history(alice) != 0 || history(bob) != 3 {
		t.Fatalf("after clearing: alice lists %d, alice's history %d, bob's %d; want 0, 0, 3", count(alice), history(alice), history(bob))
	}
	do(h, "POST", "/v1/messages", bob, `{"to_user":"alice","text":"four"}`)
	_, out := do(h, "GET", "/v1/conversations", alice, "")
	c := out["conversations"].([]any)[0].(map[string]any)
	if c["cleared_seq"] != 3.0 || c["unread"] != 1.0 || history(alice) != 1 {
		t.Fatalf("after the clear and a new message: %v, history %d; want cleared_seq 3, unread 1, 1 message", c, history(alice))
	}

	for _, tt := range []struct {
		path, tok string
		want      int
		code      string
	}{
		{"/v1/conversations/p_1_2?clear=yes", alice, 400, "bad_request"},
		{"/v1/conversations/a%20b", alice, 400, "bad_request"},
		{"/v1/conversations/p_1_2", carol, 403, "not_member"},
		{"/v1/conversations/g_99", alice, 403, "not_member"},
		{"/v1/conversations/p_1_2", "", 401, "unauthenticated"},
	} {
		code, out := do(h, "DELETE", tt.path, tt.tok, "")
		e, _ := out["error"].(map[string]any)
		if code != tt.want || e["code"] != tt.code {
			t.Errorf("DELETE %s: %d %v, want %d %s", tt.path, code, out, tt.want, tt.code)
		}
	}
}
