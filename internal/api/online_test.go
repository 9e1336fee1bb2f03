package api

import "testing"

func TestOnlineHTTP(t *testing.T) {
	h := newTestAPI(t) // nobody is online: the answers are empty pages
	tok := registerAndLogin(t, h, "alice")
	if code, out := do(h, "GET", "/v1/users/online?prefix=bo&limit=10", tok, ""); code != 200 || out["users"] == nil || out["next_cursor"] != "" {
		t.Fatalf("online page: %d %v", code, out)
	}
	for _, q := range []string{"limit=-1", "limit=x", "prefix=a%20b", "prefix=%C3%BC", "cursor=x"} {
		code, out := do(h, "GET", "/v1/users/online?"+q, tok, "")
		if e, _ := out["error"].(map[string]any); code != 400 || e["code"] != "bad_request" {
			t.Errorf("?%s: %d %v, want 400 bad_request", q, code, out)
		}
	}
	// The name the route takes cannot be registered.
	code, out := do(h, "POST", "/v1/users", "", `{"username":"Online","password":"secret-o"}`)
	if e, _ := out["error"].(map[string]any); code != 400 || e["message"] != `username "Online" is reserved (GET /v1/users/online is another route)` {
		t.Errorf("register Online: %d %v, want 400 reserved", code, out)
	}
}
