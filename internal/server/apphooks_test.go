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
	"sync"
	"testing"
)

// hookSink is a webhook endpoint that records the events it got, after
// checking their signature with its app's secret.
type hookSink struct {
	secret string
	mu     sync.Mutex
	events []string // "type who" (who: the sender, actor or user)
	bad    int      // requests with a signature that does not match
}

func newHookSink(t *testing.T, secret string) (*hookSink, string) {
	t.Helper()
	h := &hookSink{secret: secret}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(h.secret))
		mac.Write(body)
		ok := r.Header.Get("X-Magpie-Signature") == "sha256="+hex.EncodeToString(mac.Sum(nil))
		var ev struct {
			Type string `json:"type"`
			Data struct {
				From  string `json:"from"`
				Actor string `json:"actor"`
				User  string `json:"user"`
				Name  string `json:"username"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &ev)
		h.mu.Lock()
		if ok {
			h.events = append(h.events, ev.Type+" "+ev.Data.From+ev.Data.Actor+ev.Data.User+ev.Data.Name)
		} else {
			h.bad++
		}
		h.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookSink) got() ([]string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events), h.bad
}

// Each app's events go to its own webhooks, signed with its own secret,
// and to no other's: two apps and the default one chat, make groups and
// befriend; after the node has drained its queues (at shutdown), every
// endpoint holds exactly its app's events.
func TestAppWebhooksAreIsolated(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAppWebhooksAreIsolated(t, "") })
	t.Run("postgres", func(t *testing.T) { testAppWebhooksAreIsolated(t, postgresSchema(t)) })
}

func testAppWebhooksAreIsolated(t *testing.T, dsn string) {
	def, defURL := newHookSink(t, "default-hook-secret-0123")
	acme, acmeURL := newHookSink(t, "acme-hook-secret-0123456")
	beta, betaURL := newHookSink(t, "beta-hook-secret-01234567")

	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.WebhookURLs, cfg.WebhookSecret = []string{defURL}, def.secret
	n := startNode(t, cfg)
	for _, a := range []struct{ name, url, secret string }{{"acme", acmeURL, acme.secret}, {"beta", betaURL, beta.secret}} {
		body := mustJSON(map[string]any{"name": a.name, "settings": map[string]any{"webhook_urls": []string{a.url}, "webhook_secret": a.secret}})
		if st, m := signedAdmin(t, n, "/v1/admin/apps", body, adminSecret); st != 201 {
			t.Fatalf("create %s = %d %v", a.name, st, m)
		}
	}
	// In each app, two users: the first writes to the second, makes a
	// group with them and asks them to be friends.
	for _, u := range []struct{ app, a, b string }{{"", "dora", "dan"}, {"acme", "ann", "al"}, {"beta", "bea", "ben"}} {
		for _, name := range []string{u.a, u.b} {
			body := string(mustJSON(map[string]string{"app": u.app, "username": name, "password": "password-" + name}))
			if st, m := apiCall(t, n, "POST", "/v1/users", "", body); st != 201 {
				t.Fatalf("register %s/%s = %d %v", u.app, name, st, m)
			}
		}
		tok := loginAs(t, n, u.app, u.a, "password-"+u.a)
		if st, m := apiCall(t, n, "POST", "/v1/messages", tok, `{"to_user":"`+u.b+`","text":"hi"}`); st != 200 {
			t.Fatalf("%s sends = %d %v", u.a, st, m)
		}
		if st, m := apiCall(t, n, "POST", "/v1/groups", tok, `{"name":"g","members":["`+u.b+`"]}`); st != 201 {
			t.Fatalf("%s makes a group = %d %v", u.a, st, m)
		}
		if st, m := apiCall(t, n, "POST", "/v1/friends/requests", tok, `{"username":"`+u.b+`"}`); st != 200 && st != 201 {
			t.Fatalf("%s asks %s = %d %v", u.a, u.b, st, m)
		}
	}
	stopNode(t, n) // delivers what is queued

	for _, c := range []struct {
		name string
		sink *hookSink
		from string
	}{{"default", def, "dora"}, {"acme", acme, "ann"}, {"beta", beta, "bea"}} {
		got, bad := c.sink.got()
		want := []string{"friend.requested " + c.from, "group.created " + c.from, "message.stored " + c.from}
		slices.Sort(got)
		if !slices.Equal(got, want) || bad != 0 {
			t.Errorf("%s's webhook got %q (%d badly signed), want %q", c.name, got, bad, want)
		}
	}
}

// POST /v1/admin/apps/settings moves an app's events to its new webhook
// at once on the node that took the call: the events before the change
// went to the old URL, those after to the new one. An app's admin key may
// not change settings, and the default app has none to change.
func TestAppWebhookSettingsChange(t *testing.T) {
	old, oldURL := newHookSink(t, "acme-old-secret-0123456")
	cur, curURL := newHookSink(t, "acme-new-secret-0123456")
	cfg := testConfig(t, t.TempDir())
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	n := startNode(t, cfg)
	settings := func(url, secret string) []byte {
		return mustJSON(map[string]any{"name": "acme", "settings": map[string]any{"webhook_urls": []string{url}, "webhook_secret": secret}})
	}
	st, app := signedAdmin(t, n, "/v1/admin/apps", mustJSON(map[string]any{"name": "acme",
		"settings": map[string]any{"webhook_urls": []string{oldURL}, "webhook_secret": old.secret}}), adminSecret)
	if st != 201 {
		t.Fatalf("create acme = %d %v", st, app)
	}
	for _, u := range []string{"ann", "al"} {
		if st, m := apiCall(t, n, "POST", "/v1/users", "", `{"app":"acme","username":"`+u+`","password":"password-`+u+`"}`); st != 201 {
			t.Fatalf("register %s = %d %v", u, st, m)
		}
	}
	ann := loginAs(t, n, "acme", "ann", "password-ann")
	send := func() {
		t.Helper()
		if st, m := apiCall(t, n, "POST", "/v1/messages", ann, `{"to_user":"al","text":"hi"}`); st != 200 {
			t.Fatalf("send = %d %v", st, m)
		}
	}
	send()
	if st, m := signedAdmin(t, n, "/v1/admin/apps/settings", settings(curURL, cur.secret), adminSecret); st != 200 || m["settings"].(map[string]any)["webhook_secret"] != "(set)" {
		t.Fatalf("set settings = %d %v", st, m)
	}
	send()
	send()
	if st, m := adminCall(t, n, "POST", "/v1/admin/apps/settings", app["admin_key_id"].(string), app["admin_secret"].(string), settings(oldURL, old.secret)); st != 403 {
		t.Errorf("acme's own admin key sets settings = %d %v, want 403", st, m)
	}
	if st, m := signedAdmin(t, n, "/v1/admin/apps/settings", []byte(`{"name":"default","settings":{}}`), adminSecret); st != 400 {
		t.Errorf("set the default app's settings = %d %v, want 400", st, m)
	}
	if st, m := signedAdmin(t, n, "/v1/admin/apps/settings", settings(curURL, "short"), adminSecret); st != 400 {
		t.Errorf("a short webhook secret = %d %v, want 400", st, m)
	}
	stopNode(t, n)
	if got, bad := old.got(); len(got) != 1 || bad != 0 {
		t.Errorf("the old webhook got %q (%d badly signed), want the first message only", got, bad)
	}
	if got, bad := cur.got(); len(got) != 2 || bad != 0 {
		t.Errorf("the new webhook got %q (%d badly signed), want the two later messages", got, bad)
	}
}
