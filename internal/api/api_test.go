package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"

	"github.com/magpie-im/magpie/internal/jsoncheck"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
)

// nobody is presence, delivery and gateway choice for a node with no
// connections: enough for the HTTP API alone.
type nobody struct{}

func (nobody) Deliver(string, *clusterpb.Delivery) error { return nil }
func (nobody) AppendConns(d []*clusterpb.ConnRef, _ int64) []*clusterpb.ConnRef {
	return d
}
func (nobody) Conns(int64) []*clusterpb.ConnRef       { return nil }
func (nobody) Add(*clusterpb.ConnRef)                 {}
func (nobody) Online() map[int64][]*clusterpb.ConnRef { return nil }
func (nobody) Live() []*clusterpb.GatewayInfo         { return nil }
func (nobody) Pick(int64) (*clusterpb.GatewayInfo, error) {
	return &clusterpb.GatewayInfo{Id: "gw", Addrs: map[string]string{"tcp": "127.0.0.1:1", "ws": "ws://127.0.0.1:2/v1/ws"}}, nil
}

func newTestAPI(t testing.TB) http.Handler {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := logic.New(logic.Config{TokenSecret: []byte("0123456789abcdef0123456789abcdef"), LoginRate: 1e6, Encoder: envelope.Encoder{}}, st, nobody{}, nobody{}, nobody{}, log)
	if err != nil {
		t.Fatal(err)
	}
	svc.Start()
	t.Cleanup(func() { _ = svc.Shutdown(context.Background()); _ = st.Close() })
	mux := http.NewServeMux()
	New(mux, svc, log)
	return mux
}

func do(h http.Handler, method, path, token, body string) (int, map[string]any) {
	req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func TestHTTPFlow(t *testing.T) {
	h := newTestAPI(t)
	if code, out := do(h, "POST", "/v1/users", "", `{"username":"alice","password":"secret-a"}`); code != 201 || out["username"] != "alice" {
		t.Fatalf("register: %d %v", code, out)
	}
	do(h, "POST", "/v1/users", "", `{"username":"bob","password":"secret-b"}`)
	if code, out := do(h, "POST", "/v1/users", "", `{"username":"Alice","password":"secret-a"}`); code != 409 {
		t.Fatalf("duplicate register: %d %v", code, out)
	}
	code, out := do(h, "POST", "/v1/login", "", `{"username":"alice","password":"secret-a","device":"laptop"}`)
	if code != 200 || out["token"] == nil || out["gateway"] == nil {
		t.Fatalf("login: %d %v", code, out)
	}
	tok := out["token"].(string)
	if code, out := do(h, "GET", "/v1/gateway", tok, ""); code != 200 || out["gateway"].(map[string]any)["tcp"] != "127.0.0.1:1" {
		t.Fatalf("gateway: %d %v", code, out)
	}
	if code, _ := do(h, "GET", "/v1/gateway", "", ""); code != 401 {
		t.Fatalf("gateway without a token: %d, want 401", code)
	}
	code, out = do(h, "POST", "/v1/messages", tok, `{"to_user":"bob","text":"hi","client_msg_id":"x1"}`)
	if code != 200 || out["seq"] != 1.0 || out["duplicate"] != false {
		t.Fatalf("send: %d %v", code, out)
	}
	if code, out = do(h, "POST", "/v1/messages", tok, `{"to_user":"bob","text":"hi","client_msg_id":"x1"}`); code != 200 || out["seq"] != 1.0 || out["duplicate"] != true {
		t.Fatalf("retry: %d %v", code, out)
	}
	conv := "p_1_2"
	if code, out = do(h, "GET", "/v1/conversations", tok, ""); code != 200 || len(out["conversations"].([]any)) != 1 {
		t.Fatalf("conversations: %d %v", code, out)
	}
	if code, out = do(h, "GET", "/v1/conversations/"+conv+"/messages?after_seq=0&limit=9999", tok, ""); code != 200 || len(out["messages"].([]any)) != 1 {
		t.Fatalf("messages: %d %v", code, out)
	}
	tests := []struct {
		method, path, body string
		want               int
		code               string
	}{
		{"GET", "/v1/conversations/" + conv + "/messages?after_seq=-1", "", 400, "bad_request"},
		{"GET", "/v1/conversations/p_7_8/messages", "", 403, "not_member"},
		{"GET", "/v1/conversations/a%20b/messages", "", 400, "bad_request"},
		{"POST", "/v1/conversations/" + conv + "/read", `{"seq":5}`, 400, "seq_out_of_range"},
		{"POST", "/v1/conversations/" + conv + "/read", `{"seq":-1}`, 400, "bad_request"},
		{"POST", "/v1/messages", `{"to_user":"nobody","text":"x"}`, 404, "not_found"},
		{"POST", "/v1/messages", `{"to_user":"bob","text":""}`, 400, "bad_request"},
		{"POST", "/v1/messages", `{"to_user":"bob","text":"x"} trailing`, 400, "bad_request"},
		{"POST", "/v1/messages", `[1,2,3]`, 400, "bad_request"},
		{"POST", "/v1/messages", "{\"to_user\":\"bob\",\"text\":\"a\xffb\"}", 400, "bad_request"},
		{"POST", "/v1/messages", `{"to_user":"bob","text":"a\udc00"}`, 400, "bad_request"},
		{"POST", "/v1/messages", `{"to_user":"bob","to_user":"carol","text":"x"}`, 400, "bad_request"},
		{"POST", "/v1/messages", `{"to_user":"bob","To_User":"carol","text":"x"}`, 400, "bad_request"},
	}
	for _, tt := range tests {
		code, out := do(h, tt.method, tt.path, tok, tt.body)
		e, _ := out["error"].(map[string]any)
		if code != tt.want || e["code"] != tt.code {
			t.Errorf("%s %s %s: %d %v, want %d %s", tt.method, tt.path, tt.body, code, out, tt.want, tt.code)
		}
	}
	// The scheme name is case-insensitive.
	for _, scheme := range []string{"bearer", "BEARER", "bEaReR"} {
		req := httptest.NewRequest("GET", "/v1/gateway", nil)
		req.Header.Set("Authorization", scheme+" "+tok)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Errorf("Authorization: %s <token>: %d %s, want 200", scheme, rec.Code, rec.Body)
		}
	}
	if code, out = do(h, "GET", "/v1/conversations/"+conv+"/messages", tok, ""); code != 200 || len(out["messages"].([]any)) != 1 {
		t.Fatalf("refused bodies stored something: %d %v", code, out)
	}
	if code, _ = do(h, "POST", "/v1/logout", tok, ""); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	if code, _ = do(h, "GET", "/v1/conversations", tok, ""); code != 401 {
		t.Fatalf("token after logout: %d, want 401", code)
	}
}

// FuzzJSONBodies throws arbitrary bodies at every JSON endpoint: the answer
// is always a well-formed response, never a panic or a 500.
func FuzzJSONBodies(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"secret-a"}`, `{"to_user":"alice","text":"hi"}`, `{"seq":1}`,
		`{`, `[]`, `null`, `{"username":1e400}`, `{"a":{"a":{"a":{}}}}`, "\xff\xfe", `{"text":"\ud800"}`,
		`{"to_user":"alice","text":"hi","to_user":"bob"}`, "{\"to_user\":\"alice\",\"text\":\"h\xffi\"}",
	} {
		f.Add(seed)
	}
	h := newTestAPI(f)
	do(h, "POST", "/v1/users", "", `{"username":"alice","password":"secret-a"}`)
	_, out := do(h, "POST", "/v1/login", "", `{"username":"alice","password":"secret-a"}`)
	tok, _ := out["token"].(string)
	f.Fuzz(func(t *testing.T, body string) {
		for _, ep := range []struct{ path, tok string }{
			{"/v1/users", ""}, {"/v1/login", ""}, {"/v1/messages", tok}, {"/v1/conversations/p_1_1/read", tok},
		} {
			code, _ := do(h, "POST", ep.path, ep.tok, body)
			if code >= 500 {
				t.Fatalf("%s with %q: status %d", ep.path, body, code)
			}
			// Nothing that jsoncheck refuses is ever taken.
			if err := jsoncheck.Check([]byte(body), jsoncheck.Options{FoldKeys: true}); code < 300 && err != nil {
				t.Fatalf("%s with %q: status %d, but the body is refused: %v", ep.path, body, code, err)
			}
		}
	})
}

// Logins answer {id, tcp, ws} whether the gateway's registry entry keeps
// its addresses by kind or, written by an older gateway, in tcp and ws.
func TestGatewayJSON(t *testing.T) {
	want := map[string]string{"id": "gw", "tcp": "tls://h:7070", "ws": "wss://h/v1/ws"}
	for _, gi := range []*clusterpb.GatewayInfo{
		{Id: "gw", Addrs: map[string]string{"tcp": "tls://h:7070", "ws": "wss://h/v1/ws"}},
		{Id: "gw", Tcp: "tls://h:7070", Ws: "wss://h/v1/ws"},
	} {
		if got := gatewayJSON(gi); !maps.Equal(got, want) {
			t.Errorf("gatewayJSON(%v) = %v, want %v", gi, got, want)
		}
	}
}

func TestLookupUserHTTP(t *testing.T) {
	h := newTestAPI(t)
	do(h, "POST", "/v1/users", "", `{"username":"alice","password":"secret-a"}`)
	do(h, "POST", "/v1/users", "", `{"username":"Bob","password":"secret-b"}`)
	_, out := do(h, "POST", "/v1/login", "", `{"username":"alice","password":"secret-a"}`)
	tok := out["token"].(string)
	if code, out := do(h, "GET", "/v1/users/bob", tok, ""); code != 200 || out["username"] != "Bob" || out["user_id"] != 2.0 || len(out) != 2 {
		t.Fatalf("lookup bob: %d %v", code, out)
	}
	if code, out := do(h, "GET", "/v1/users/carol", tok, ""); code != 404 || out["error"].(map[string]any)["message"] != "no such user: carol" {
		t.Fatalf("lookup carol: %d %v", code, out)
	}
	if code, _ := do(h, "GET", "/v1/users/bob", "", ""); code != 401 {
		t.Fatalf("lookup without a token: %d, want 401", code)
	}
	if code, out := do(h, "GET", "/v1/users/online", tok, ""); code != 200 || out["users"] == nil {
		t.Fatalf("the online list is still there: %d %v", code, out)
	}
}
