package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// vetoSink is a before-send and before-add endpoint: it checks the
// signature, records "event kind users…", and refuses anything naming
// mallory or whose text contains "veto".
type vetoSink struct {
	secret string
	mu     sync.Mutex
	calls  []string
	bad    int
}

func newVetoSink(t *testing.T, secret string) (*vetoSink, string) {
	t.Helper()
	v := &vetoSink{secret: secret}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(v.secret))
		mac.Write(body)
		var in struct {
			Text  string   `json:"text"`
			User  string   `json:"user"`
			Users []string `json:"users"`
			Actor string   `json:"actor"`
			From  string   `json:"from"`
		}
		_ = json.Unmarshal(body, &in)
		v.mu.Lock()
		if r.Header.Get("X-Magpie-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			v.bad++
		}
		v.calls = append(v.calls, strings.TrimSpace(r.Header.Get("X-Magpie-Event")+" "+in.Actor+in.From+" "+in.User+strings.Join(in.Users, ",")))
		v.mu.Unlock()
		allow := in.User != "mallory" && !slices.Contains(in.Users, "mallory") && !strings.Contains(in.Text, "veto")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"allow": allow, "reason": "mallory is not welcome"})
	}))
	t.Cleanup(srv.Close)
	return v, srv.URL
}

func (v *vetoSink) got() ([]string, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.calls), v.bad
}

// Before-add hooks veto friend adds and member adds, signed like the
// before-send hook; the default app's are the server's flags, another
// app's its settings (before_send_url too), and no app's calls reach
// another's hook.
func TestBeforeAddHooks(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testBeforeAddHooks(t, "") })
	t.Run("postgres", func(t *testing.T) { testBeforeAddHooks(t, postgresSchema(t)) })
}

func testBeforeAddHooks(t *testing.T, dsn string) {
	def, defURL := newVetoSink(t, "default-veto-secret-0123")
	acme, acmeURL := newVetoSink(t, "acme-veto-secret-0123456")
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.BeforeAddURL, cfg.WebhookSecret = defURL, def.secret
	n := startNode(t, cfg)
	body := mustJSON(map[string]any{"name": "acme", "settings": map[string]any{"webhook_secret": acme.secret,
		"before_send_url": acmeURL, "before_add_url": acmeURL}})
	if st, m := signedAdmin(t, n, "/v1/admin/apps", body, adminSecret); st != 201 {
		t.Fatalf("create acme = %d %v", st, m)
	}
	for _, u := range []struct{ app, name string }{{"", "alice"}, {"", "bob"}, {"", "mallory"}, {"acme", "ann"}, {"acme", "al"}, {"acme", "mallory"}} {
		b := string(mustJSON(map[string]string{"app": u.app, "username": u.name, "password": "password-" + u.name}))
		if st, m := apiCall(t, n, "POST", "/v1/users", "", b); st != 201 {
			t.Fatalf("register %s/%s = %d %v", u.app, u.name, st, m)
		}
	}
	alice := loginAs(t, n, "", "alice", "password-alice")
	mallory := loginAs(t, n, "", "mallory", "password-mallory")
	ann := loginAs(t, n, "acme", "ann", "password-ann")

	st, g := apiCall(t, n, "POST", "/v1/groups", alice, `{"name":"open","join_policy":"open"}`)
	gid, _ := g["id"].(string)
	if st != 201 || gid == "" {
		t.Fatalf("create a group = %d %v", st, g)
	}
	for _, c := range []struct {
		who, tok, method, path, body string
		status                       int
	}{
		{"alice", alice, "POST", "/v1/friends/requests", `{"username":"mallory"}`, 403},
		{"alice", alice, "POST", "/v1/friends/requests", `{"username":"bob"}`, 201},
		{"alice", alice, "POST", "/v1/groups", `{"name":"g","members":["bob","mallory"]}`, 403},
		{"alice", alice, "POST", "/v1/groups", `{"name":"g","members":["bob"]}`, 201},
		{"alice", alice, "POST", "/v1/groups/" + gid + "/members", `{"usernames":["mallory"]}`, 403},
		{"mallory", mallory, "POST", "/v1/groups/" + gid + "/join", ``, 403},
		{"alice", alice, "POST", "/v1/groups/" + gid + "/members", `{"usernames":["bob"]}`, 200},
		{"alice", alice, "POST", "/v1/messages", `{"to_user":"bob","text":"veto? no before-send hook here"}`, 200},
		{"ann", ann, "POST", "/v1/messages", `{"to_user":"al","text":"please veto this"}`, 403},
		{"ann", ann, "POST", "/v1/messages", `{"to_user":"al","text":"fine"}`, 200},
		{"ann", ann, "POST", "/v1/friends/requests", `{"username":"mallory"}`, 403},
		{"ann", ann, "POST", "/v1/friends/requests", `{"username":"al"}`, 201},
	} {
		st, m := apiCall(t, n, c.method, c.path, c.tok, c.body)
		if st != c.status {
			t.Errorf("%s %s %s %s = %d %v; want %d", c.who, c.method, c.path, c.body, st, m, c.status)
		}
		if st == 403 {
			if e, _ := m["error"].(map[string]any); e["message"] != "mallory is not welcome" {
				t.Errorf("%s %s: refusal %v; want the hook's reason", c.method, c.path, m)
			}
		}
	}
	if st, g := apiCall(t, n, "GET", "/v1/groups/"+gid, alice, ""); st != 200 || g["member_count"] != float64(2) {
		t.Errorf("the open group = %d %v; want alice and bob, no mallory", st, g)
	}
	gotDef, badDef := def.got()
	wantDef := []string{"friend.before_add alice mallory", "friend.before_add alice bob", "group.before_member_add alice bob,mallory",
		"group.before_member_add alice bob", "group.before_member_add alice mallory", "group.before_member_add mallory mallory",
		"group.before_member_add alice bob"}
	if !slices.Equal(gotDef, wantDef) || badDef != 0 {
		t.Errorf("the default app's hook got %q (%d badly signed), want %q", gotDef, badDef, wantDef)
	}
	gotAcme, badAcme := acme.got()
	wantAcme := []string{"message.before_send ann", "message.before_send ann", "friend.before_add ann mallory", "friend.before_add ann al"}
	if !slices.Equal(gotAcme, wantAcme) || badAcme != 0 {
		t.Errorf("acme's hook got %q (%d badly signed), want %q", gotAcme, badAcme, wantAcme)
	}
}
