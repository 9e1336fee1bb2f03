package api

import (
	"fmt"
	"testing"
	"time"
)

func TestScheduledHTTP(t *testing.T) {
	h := newTestAPI(t)
	alice := registerAndLogin(t, h, "alice")
	registerAndLogin(t, h, "bob")
	at := time.Now().Add(time.Hour).UnixMilli()
	code, out := do(h, "POST", "/v1/messages", alice, fmt.Sprintf(`{"to_user":"bob","text":"later","client_msg_id":"s-1","send_at":%d}`, at))
	if code != 200 || out["scheduled_id"] != 1.0 || out["send_at"] != float64(at) || out["client_msg_id"] != "s-1" || out["seq"] != nil {
		t.Fatalf("schedule: %d %v", code, out)
	}
	code, out = do(h, "GET", "/v1/messages/scheduled", alice, "")
	list, _ := out["scheduled"].([]any)
	if code != 200 || len(list) != 1 || list[0].(map[string]any)["text"] != "later" || list[0].(map[string]any)["to_user"] != "bob" || list[0].(map[string]any)["status"] != "pending" {
		t.Fatalf("list: %d %v", code, out)
	}
	for _, tt := range []struct {
		method, path, body string
		want               int
		code               string
	}{
		{"POST", "/v1/messages", `{"to_user":"bob","text":"x","send_at":-5}`, 400, "bad_request"},
		{"POST", "/v1/messages", `{"to_user":"bob","text":"x","send_at":1000}`, 400, "bad_request"},
		{"POST", "/v1/messages", fmt.Sprintf(`{"to_user":"bob","text":"x","send_at":%d}`, time.Now().Add(31*24*time.Hour).UnixMilli()), 400, "bad_request"},
		{"POST", "/v1/messages", fmt.Sprintf(`{"broadcast":true,"text":"x","send_at":%d}`, at), 400, "bad_request"},
		{"DELETE", "/v1/messages/scheduled/x", "", 400, "bad_request"},
		{"DELETE", "/v1/messages/scheduled/0", "", 400, "bad_request"},
		{"DELETE", "/v1/messages/scheduled/99", "", 404, "not_found"},
	} {
		code, out := do(h, tt.method, tt.path, alice, tt.body)
		if e, _ := out["error"].(map[string]any); code != tt.want || e["code"] != tt.code {
			t.Errorf("%s %s %s: %d %v, want %d %s", tt.method, tt.path, tt.body, code, out, tt.want, tt.code)
		}
	}
	if code, _ := do(h, "DELETE", "/v1/messages/scheduled/1", alice, ""); code != 204 {
		t.Fatalf("cancel: %d", code)
	}
	if code, out := do(h, "GET", "/v1/messages/scheduled", alice, ""); code != 200 || len(out["scheduled"].([]any)) != 0 {
		t.Fatalf("after cancel: %d %v", code, out)
	}
}
