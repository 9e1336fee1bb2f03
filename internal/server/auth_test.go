package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/auth/oidctest"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// A user of the external HTTP source logs in through the SDK (POST
// /v1/login, then the long connection) and chats with a local user; the
// endpoint's token login works through POST /v1/login/token; an endpoint
// that fails refuses the login with 503.
func TestHTTPAuthSource(t *testing.T) {
	const secret = "auth-endpoint-secret-1"
	var down atomic.Bool // set by the test, read by the endpoint's goroutines
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Magpie-Signature") != auth.Signature([]byte(secret), body) || down.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var ask map[string]string
		_ = json.Unmarshal(body, &ask)
		switch {
		case ask["username"] == "hal" && ask["password"] == "password-hal":
			io.WriteString(w, `{"allow":true,"display_name":"Hal"}`)
		case ask["token"] == "app-token-hal":
			io.WriteString(w, `{"allow":true,"username":"hal","display_name":"Hal T"}`)
		case ask["username"] == "hal":
			io.WriteString(w, `{"allow":false}`)
		default:
			io.WriteString(w, `{"allow":false,"unknown":true}`)
		}
	}))
	defer ep.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.Auth, cfg.AuthURL, cfg.AuthSecret = []string{"local", "http"}, ep.URL, secret
	n := startNode(t, cfg)
	ctx := context.Background()

	alice, _ := newClient(t, n, "alice", "laptop", "tcp", true)
	_, halBox := newClient(t, n, "hal", "phone", "ws", false)
	if _, err := alice.SendText(ctx, "hal", "hello hal"); err != nil {
		t.Fatalf("send to the HTTP source's user: %v", err)
	}
	waitFor(t, "hal's message", func() bool { return strings.Join(halBox.texts(), ",") == "hello hal" })

	post := func(path, body string) (int, map[string]any) {
		t.Helper()
		return apiCall(t, n, "POST", path, "", body)
	}
	if st, m := post("/v1/login/token", `{"token":"app-token-hal","device":"tablet"}`); st != 200 || m["username"] != "hal" || m["token"] == "" || m["display_name"] != "Hal T" {
		t.Errorf("POST /v1/login/token = %d %v, want hal's session", st, m)
	}
	if st, m := post("/v1/login", `{"username":"hal","password":"wrong-pass"}`); st != 401 {
		t.Errorf("wrong password = %d %v, want 401", st, m)
	}
	if st, m := post("/v1/users", `{"username":"HAL","password":"local-pass-1"}`); st != 409 {
		t.Errorf("register over hal = %d %v, want 409", st, m)
	}
	down.Store(true)
	if st, m := post("/v1/login", `{"username":"hal","password":"password-hal"}`); st != 503 {
		t.Errorf("endpoint failing = %d %v, want 503", st, m)
	}
	if st, m := post("/v1/login", `{"username":"alice","password":"password-alice"}`); st != 200 {
		t.Errorf("local login while the endpoint fails = %d %v, want 200", st, m)
	}
}

// An app's user exchanges an ID token of the issuer (discovered, JWKS
// fetched) for a session at POST /v1/login/token and chats with it over
// the long connection; a forged token is 401, the issuer down is 503.
func TestOIDCTokenLogin(t *testing.T) {
	is := oidctest.Start(t)
	cfg := testConfig(t, t.TempDir())
	cfg.Auth, cfg.AuthOIDCIssuer, cfg.AuthOIDCAudience = []string{"local", "oidc"}, is.URL, "chat-app"
	n := startNode(t, cfg)
	ctx := context.Background()
	alice, aliceBox := newClient(t, n, "alice", "laptop", "tcp", true)

	exchange := func(tok string) (int, map[string]any) {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"token": tok, "device": "phone"})
		resp, err := http.Post("http://"+n.HTTPAddr()+"/v1/login/token", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	st, m := exchange(is.Token(t, oidctest.Claims{"aud": "chat-app", "sub": "u-77", "preferred_username": "ivan", "name": "Ivan I", "email": "ivan@example.org"}))
	if st != 200 || m["username"] != "ivan" || m["display_name"] != "Ivan I" || m["email"] != "ivan@example.org" {
		t.Fatalf("POST /v1/login/token = %d %v", st, m)
	}
	ivan := authedRaw(t, n, m["token"].(string)) // the long connection takes the exchanged token
	ack := ivan.call(&magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "alice", Text: "hi from the app"}}})
	if ack.GetSendAck() == nil {
		t.Fatalf("send: %v", ack)
	}
	waitFor(t, "alice's message", func() bool { return strings.Join(aliceBox.texts(), ",") == "hi from the app" })
	if _, err := alice.SendText(ctx, "ivan", "hello ivan"); err != nil {
		t.Errorf("send to the token user: %v", err)
	}

	if st, m := exchange(is.Token(t, oidctest.Claims{"aud": "another-app", "preferred_username": "ivan"})); st != 401 {
		t.Errorf("token for another audience = %d %v, want 401", st, m)
	}
	if st, m := exchange(is.Token(t, oidctest.Claims{"aud": "chat-app", "preferred_username": "alice"})); st != 401 {
		t.Errorf("token naming the local alice = %d %v, want 401", st, m)
	}
	is.AddKey(t, "ES256") // a key the node has not fetched: it must ask the issuer
	is.SetDown(true)
	if st, m := exchange(is.Token(t, oidctest.Claims{"aud": "chat-app", "preferred_username": "ivan"})); st != 503 {
		t.Errorf("issuer down = %d %v, want 503", st, m)
	}
}
