package server

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// Profiles on both stores: alice sets hers; her friend bob reads it, carol
// (no contact) and acme's alice (another app) cannot; bad fields are
// refused; the change is a user.updated event for the app's webhook.
func TestProfiles(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testProfiles(t, "") })
	t.Run("postgres", func(t *testing.T) { testProfiles(t, postgresSchema(t)) })
}

func testProfiles(t *testing.T, dsn string) {
	sink, url := newHookSink(t, "default-hook-secret-0123")
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.WebhookURLs, cfg.WebhookSecret = []string{url}, sink.secret
	n := startNode(t, cfg)
	if st, m := signedAdmin(t, n, "/v1/admin/apps", []byte(`{"name":"acme"}`), adminSecret); st != 201 {
		t.Fatalf("create app = %d %v", st, m)
	}
	tok := map[string]string{}
	for _, u := range []struct{ app, name string }{{"", "alice"}, {"", "bob"}, {"", "carol"}, {"acme", "alice"}} {
		body := string(mustJSON(map[string]string{"app": u.app, "username": u.name, "password": "password-" + u.name}))
		if st, m := apiCall(t, n, "POST", "/v1/users", "", body); st != 201 {
			t.Fatalf("register %s = %d %v", u.name, st, m)
		}
		tok[u.app+"/"+u.name] = loginAs(t, n, u.app, u.name, "password-"+u.name)
	}
	alice, bob, carol, acmeAlice := tok["/alice"], tok["/bob"], tok["/carol"], tok["acme/alice"]
	if st, m := apiCall(t, n, "POST", "/v1/friends/requests", alice, `{"username":"bob"}`); st != 200 && st != 201 {
		t.Fatalf("alice asks bob = %d %v", st, m)
	}
	if st, m := apiCall(t, n, "POST", "/v1/friends/requests", bob, `{"username":"alice"}`); st != 200 && st != 201 {
		t.Fatalf("bob accepts = %d %v", st, m)
	}

	st, p := apiCall(t, n, "PATCH", "/v1/profile", alice, `{"display_name":"Alice A.","avatar_url":"https://cdn.example/a.png","custom":{"title":"CTO"}}`)
	if st != 200 || p["display_name"] != "Alice A." || p["custom"].(map[string]any)["title"] != "CTO" {
		t.Fatalf("alice updates her profile = %d %v", st, p)
	}
	if st, p := apiCall(t, n, "PATCH", "/v1/profile", alice, `{"display_name":"Alice"}`); st != 200 || p["avatar_url"] != "https://cdn.example/a.png" {
		t.Errorf("a second update of the name alone = %d %v, want the avatar kept", st, p)
	}
	if st, p := apiCall(t, n, "GET", "/v1/users/alice/profile", bob, ""); st != 200 || p["display_name"] != "Alice" || p["avatar_url"] != "https://cdn.example/a.png" {
		t.Errorf("bob (a friend) reads alice's profile = %d %v", st, p)
	}
	if st, p := apiCall(t, n, "GET", "/v1/profile", alice, ""); st != 200 || p["username"] != "alice" || p["display_name"] != "Alice" {
		t.Errorf("alice reads her own profile = %d %v", st, p)
	}
	if st, p := apiCall(t, n, "GET", "/v1/users/alice/profile", carol, ""); st != 403 {
		t.Errorf("carol (no contact) reads alice's profile = %d %v, want 403", st, p)
	}
	if st, p := apiCall(t, n, "GET", "/v1/users/alice/profile", acmeAlice, ""); st != 200 || p["display_name"] != "" {
		t.Errorf("acme's alice reads 'alice' = %d %v, want her own empty profile", st, p)
	}
	if st, p := apiCall(t, n, "GET", "/v1/users/bob/profile", acmeAlice, ""); st != 404 {
		t.Errorf("acme's alice reads bob's profile = %d %v, want 404", st, p)
	}
	// An imported user brings a profile; a bad one is refused alone.
	hash, err := bcrypt.GenerateFromPassword([]byte("password-dave"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	imp := mustJSON(map[string]any{"users": []map[string]any{
		{"username": "dave", "password_hash": string(hash), "display_name": "Dave", "avatar_url": "https://cdn.example/d.png", "custom": map[string]string{"dept": "ops"}},
		{"username": "eve", "password_hash": string(hash), "avatar_url": "ftp://x"},
	}})
	if st, m := signedAdmin(t, n, "/v1/admin/users/import", imp, adminSecret); st != 200 || m["created"] != float64(1) || m["failed"] != float64(1) {
		t.Errorf("import users with profiles = %d %v", st, m)
	}
	dave := loginAs(t, n, "", "dave", "password-dave")
	if st, p := apiCall(t, n, "GET", "/v1/profile", dave, ""); st != 200 || p["avatar_url"] != "https://cdn.example/d.png" || p["custom"].(map[string]any)["dept"] != "ops" {
		t.Errorf("the imported dave's profile = %d %v", st, p)
	}

	many := make([]string, 33)
	for i := range many {
		many[i] = fmt.Sprintf(`"f%d":"x"`, i)
	}
	for _, bad := range []string{`{}`, `{"avatar_url":"javascript:alert(1)"}`, `{"custom":{` + strings.Join(many, ",") + `}}`,
		`{"custom":{"bad key":"x"}}`, `{"display_name":"a\u0007b"}`, `{"display_name":"` + strings.Repeat("x", 257) + `"}`, `{"nickname":"x"}`} {
		if st, m := apiCall(t, n, "PATCH", "/v1/profile", alice, bad); st != 400 {
			t.Errorf("PATCH /v1/profile %.60s = %d %v, want 400", bad, st, m)
		}
	}
	stopNode(t, n)
	got, _ := sink.got()
	updates := 0
	for _, e := range got {
		if e == "user.updated alice" {
			updates++
		}
	}
	if updates != 2 {
		t.Errorf("the webhook got %q, want two user.updated for alice", got)
	}
}
