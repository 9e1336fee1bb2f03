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
