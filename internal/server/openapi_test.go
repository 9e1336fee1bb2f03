package server

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/api/openapicheck"
	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/push"
	"golang.org/x/crypto/bcrypt"
)

// openAPIRecorder is a reverse proxy in front of a node's HTTP API that
// checks every request it forwards and every answer (2xx and errors)
// against the node's own GET /v1/openapi.json, and counts the routes hit.
type openAPIRecorder struct {
	*httptest.Server
	doc *openapicheck.Doc

	mu     sync.Mutex
	errs   []string
	hits   map[string]int    // route → answers
	ok2xx  map[string]int    // route → 2xx answers
	last   map[string][]byte // route → the last 2xx JSON answer
	checks int
}

// badRequestHeader marks a request the test sends malformed on purpose:
// its body is not checked against the request schema (the answer is).
const badRequestHeader = "X-Test-Bad-Request"

func newOpenAPIRecorder(t *testing.T, upstream string) *openAPIRecorder {
	t.Helper()
	resp, err := http.Get(upstream + "/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	doc, err := openapicheck.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	rec := &openAPIRecorder{doc: doc, hits: map[string]int{}, ok2xx: map[string]int{}, last: map[string][]byte{}}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if r.Header.Get(badRequestHeader) == "" {
			if _, err := doc.CheckRequest(r.Method, r.URL.Path, r.Header.Get("Content-Type"), body); err != nil {
				rec.fail("request: " + err.Error())
			}
		}
		cw := &captureWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(cw, r)
		route, err := doc.CheckResponse(r.Method, r.URL.Path, cw.status, cw.Header().Get("Content-Type"), cw.body.Bytes())
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.checks++
		if err != nil {
			rec.errs = append(rec.errs, fmt.Sprintf("answer: %v\n\tbody: %.600s", err, cw.body.Bytes()))
		}
		if route != "" {
			rec.hits[route]++
			if cw.status/100 == 2 {
				rec.ok2xx[route]++
				rec.last[route] = cw.body.Bytes()
			}
		}
	}))
	t.Cleanup(rec.Close)
	return rec
}

// report fails t with every mismatch seen.
func (rec *openAPIRecorder) report(t *testing.T) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, e := range rec.errs {
		t.Error(e)
	}
}

func (rec *openAPIRecorder) fail(msg string) {
	rec.mu.Lock()
	rec.errs = append(rec.errs, msg)
	rec.mu.Unlock()
}

// captureWriter keeps a copy of the answer.
type captureWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *captureWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }
func (w *captureWriter) Write(p []byte) (int, error) {
	w.body.Write(p)
	return w.ResponseWriter.Write(p)
}

// oaUser calls the API through the recorder, as one user (or nobody).
type oaUser struct {
	t     *testing.T
	base  string
	name  string
	token string
}

// call sends body (nil: none; string: raw; else JSON) and fails the test
// unless the status is want; it returns the decoded answer.
func (u *oaUser) call(method, path string, body any, want int, hdr ...string) map[string]any {
	u.t.Helper()
	var rd io.Reader = http.NoBody
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, u.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return u.send(req, want)
}

func (u *oaUser) send(req *http.Request, want int) map[string]any {
	u.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		u.t.Fatalf("%s %s as %q = %d %s, want %d", req.Method, req.URL.Path, u.name, resp.StatusCode, raw, want)
	}
	out := map[string]any{}
	_ = json.Unmarshal(raw, &out)
	return out
}

func (u *oaUser) as(name, token string) *oaUser {
	return &oaUser{t: u.t, base: u.base, name: name, token: token}
}

// signed sends a request signed like the push and admin APIs.
func (u *oaUser) signed(method, path, key, secret, body string, want int, hdr ...string) map[string]any {
	u.t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nb := make([]byte, 16)
	_, _ = rand.Read(nb)
	nonce := hex.EncodeToString(nb)
	req, _ := http.NewRequest(method, u.base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(push.HeaderKey, key)
	req.Header.Set(push.HeaderTimestamp, ts)
	req.Header.Set(push.HeaderNonce, nonce)
	req.Header.Set(push.HeaderSignature, push.Sign([]byte(secret), method, path, ts, nonce, []byte(body)))
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return u.send(req, want)
}

func (u *oaUser) upload(name, content string) map[string]any {
	u.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", name)
	_, _ = fw.Write([]byte(content))
	_ = mw.Close()
	req, _ := http.NewRequest("POST", u.base+"/v1/files", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+u.token)
	return u.send(req, http.StatusCreated)
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }
func num(m map[string]any, k string) int64  { f, _ := m[k].(float64); return int64(f) }

// openAPINo2xx are the routes the run reaches without a success answer,
// with the reason; each is still hit, and its error answer checked.
var openAPINo2xx = map[string]string{}

// The answers of a real node match GET /v1/openapi.json: a run of calls
// that reaches every route with a success answer (and a sample of errors)
// goes through a recorder that validates each request and answer against
// the document. On both stores.
func TestOpenAPIResponses(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testOpenAPIResponses(t, "") })
	t.Run("postgres", func(t *testing.T) { testOpenAPIResponses(t, postgresSchema(t)) })
}

func testOpenAPIResponses(t *testing.T, dsn string) {
	const authSecret, pushSecret = "auth-endpoint-secret-1", "push-secret-0123456789"
	ep := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ask map[string]string
		_ = json.Unmarshal(body, &ask)
		if r.Header.Get("X-Magpie-Signature") == auth.Signature([]byte(authSecret), body) && ask["token"] == "app-token-hal" {
			io.WriteString(w, `{"allow":true,"username":"hal","display_name":"Hal T","email":"hal@example.com"}`)
			return
		}
		io.WriteString(w, `{"allow":false,"unknown":true}`)
	}))
	defer ep.Close()
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.Auth, cfg.AuthURL, cfg.AuthSecret = []string{"local", "http"}, ep.URL, authSecret
	cfg.AdminKeys = map[string][]byte{"ops": []byte(adminSecret)}
	cfg.PushKeys = map[string][]byte{"crm": []byte(pushSecret)}
	n := startNode(t, cfg)
	rec := newOpenAPIRecorder(t, "http://"+n.HTTPAddr())
	anon := &oaUser{t: t, base: rec.URL}
	defer rec.report(t) // also after a t.Fatal

	anon.call("GET", "/healthz", nil, 200)
	anon.call("GET", "/v1/openapi.json", nil, 200)
	users := map[string]*oaUser{}
	for _, name := range []string{"alice", "bob", "carol", "dave"} {
		anon.call("POST", "/v1/users", map[string]string{"username": name, "password": "password-" + name}, 201)
		m := anon.call("POST", "/v1/login", map[string]string{"username": name, "password": "password-" + name, "device": "http"}, 200)
		users[name] = anon.as(name, str(m, "token"))
	}
	alice, bob, carol, dave := users["alice"], users["bob"], users["carol"], users["dave"]
	anon.call("POST", "/v1/users", map[string]string{"username": "alice", "password": "password-x"}, 409)
	anon.call("POST", "/v1/login", map[string]string{"username": "alice", "password": "wrong-password"}, 401)
	anon.call("POST", "/v1/login/token", map[string]string{"token": "app-token-hal", "device": "tablet"}, 200)
	anon.call("POST", "/v1/messages", map[string]string{"to_user": "bob", "text": "x"}, 401)
	alice.call("POST", "/v1/messages", `{"to_user":`, 400, badRequestHeader, "1")
	alice.call("GET", "/v1/gateway", nil, 200)

	// Friends and blocks.
	alice.call("PUT", "/v1/friends/policy", map[string]string{"policy": "approve"}, 200)
	alice.call("POST", "/v1/friends/requests", map[string]string{"username": "bob"}, 201)
	bob.call("GET", "/v1/friends", nil, 200) // alice's request is incoming
	bob.call("POST", "/v1/friends/requests/alice/accept", nil, 200)
	alice.call("PATCH", "/v1/friends/bob", map[string]string{"remark": "Bobby", "group": "work"}, 200)
	alice.call("GET", "/v1/friends/groups", nil, 200)
	alice.call("POST", "/v1/friends/requests", map[string]string{"username": "carol"}, 201)
	carol.call("POST", "/v1/friends/requests/alice/decline", nil, 204)
	dave.call("PUT", "/v1/friends/policy", map[string]string{"policy": "anyone"}, 200)
	if m := alice.call("POST", "/v1/friends/requests", map[string]string{"username": "dave"}, 201); str(m, "status") != "friends" {
		t.Errorf("request to a user of policy anyone = %v", m)
	}
	alice.call("DELETE", "/v1/friends/dave", nil, 204)
	alice.call("GET", "/v1/friends/sync?since=0&limit=10", nil, 200) // with dave's removal
	carol.call("POST", "/v1/blocks", map[string]string{"username": "dave"}, 204)
	carol.call("GET", "/v1/friends", nil, 200) // with a block
	carol.call("DELETE", "/v1/blocks/dave", nil, 204)

	// Users, presence and profiles.
	newClient(t, n, "alice", "laptop", "tcp", false) // online
	if m := alice.call("GET", "/v1/users/online?prefix=a&limit=10", nil, 200); len(m["users"].([]any)) != 1 {
		t.Errorf("online = %v, want alice", m)
	}
	bob.call("GET", "/v1/users/online?limit=1&cursor=alice", nil, 200)
	alice.call("GET", "/v1/users/bob", nil, 200)
	alice.call("GET", "/v1/users/nobody", nil, 404)
	alice.call("PATCH", "/v1/profile", map[string]any{"display_name": "Alice", "custom": map[string]string{"team": "blue"}}, 200)
	alice.call("GET", "/v1/profile", nil, 200)
	bob.call("GET", "/v1/users/alice/profile", nil, 200)

	// Messages, files, receipts, search.
	ack := alice.call("POST", "/v1/messages", map[string]any{"to_user": "bob", "text": "hello searchable world", "client_msg_id": "m1"}, 200)
	conv := str(ack, "conversation_id")
	if dup := alice.call("POST", "/v1/messages", map[string]any{"to_user": "bob", "text": "hello searchable world", "client_msg_id": "m1"}, 200); dup["duplicate"] != true {
		t.Errorf("resend = %v, want a duplicate", dup)
	}
	alice.call("POST", "/v1/messages", map[string]any{"to_user": "bob", "text": "a reply", "reply_to": 1}, 200)
	f := alice.upload("note.txt", "file content")
	alice.call("POST", "/v1/messages", map[string]any{"to_user": "bob", "file_id": str(f, "id"), "text": "caption"}, 200)
	bob.call("GET", "/v1/files/"+str(f, "id"), nil, 200)
	bob.call("GET", "/v1/files/f_0000000000000000000000", nil, 404)
	sched := alice.call("POST", "/v1/messages", map[string]any{"to_user": "bob", "text": "later", "send_at": time.Now().Add(time.Hour).UnixMilli()}, 200)
	alice.call("POST", "/v1/messages", map[string]any{"to_group": "", "to_user": "carol", "text": "later too", "send_at": time.Now().Add(2 * time.Hour).UnixMilli()}, 200)
	alice.call("GET", "/v1/messages/scheduled", nil, 200)
	alice.call("DELETE", fmt.Sprintf("/v1/messages/scheduled/%d", num(sched, "scheduled_id")), nil, 204)
	alice.call("DELETE", "/v1/messages/scheduled/0", nil, 400)
	alice.call("POST", "/v1/conversations/"+conv+"/messages/1/edit", map[string]string{"text": "hello edited searchable world"}, 200)
	sent := alice.call("POST", "/v1/messages", map[string]any{"to_user": "bob", "text": "oops"}, 200)
	alice.call("POST", fmt.Sprintf("/v1/conversations/%s/messages/%d/recall", conv, num(sent, "seq")), nil, 200)
	bob.call("GET", "/v1/conversations", nil, 200)
	h := bob.call("GET", "/v1/conversations/"+conv+"/messages?limit=50", nil, 200)
	bob.call("POST", "/v1/conversations/"+conv+"/read", map[string]any{"seq": num(h, "last_seq")}, 200)
	alice.call("GET", "/v1/conversations/"+conv+"/messages/1/reads", nil, 200)
	alice.call("GET", "/v1/conversations/"+conv+"/messages?after_seq=1&before_seq=3", nil, 200)
	alice.call("GET", "/v1/search?q=searchable&limit=5", nil, 200)
	alice.call("GET", "/v1/search?q=searchable&conversation_id="+conv+"&limit=1", nil, 200)
	alice.call("PATCH", "/v1/conversations/"+conv, map[string]bool{"pinned": true, "muted": true}, 200)
	bob.call("DELETE", "/v1/conversations/"+conv+"?clear=true", nil, 200)
	alice.call("POST", "/v1/messages", map[string]any{"to_user": "bob", "text": "after the clear"}, 200)
	bob.call("GET", "/v1/conversations", nil, 200) // with cleared_seq
	bob.call("DELETE", "/v1/conversations/"+conv, nil, 200)

	// Groups.
	g := alice.call("POST", "/v1/groups", map[string]any{"name": "team", "members": []string{"bob"}, "join_policy": "approval", "intro": "hi"}, 201)
	gid := str(g, "id")
	alice.call("GET", "/v1/groups", nil, 200)
	alice.call("GET", "/v1/groups/"+gid, nil, 200)
	alice.call("PATCH", "/v1/groups/"+gid, map[string]any{"notice": "read me", "max_members": 10}, 200)
	alice.call("POST", "/v1/groups/"+gid+"/members", map[string]any{"usernames": []string{"carol"}}, 200)
	carol.call("POST", "/v1/groups/"+gid+"/leave", nil, 204)
	dave.call("POST", "/v1/groups/"+gid+"/join", nil, 202)
	carol.call("POST", "/v1/groups/"+gid+"/join", nil, 202)
	alice.call("GET", "/v1/groups/"+gid+"/requests", nil, 200)
	alice.call("POST", "/v1/groups/"+gid+"/requests/dave/approve", nil, 204)
	alice.call("POST", "/v1/groups/"+gid+"/requests/carol/reject", nil, 204)
	alice.call("PUT", "/v1/groups/"+gid+"/members/bob/role", map[string]string{"role": "admin"}, 204)
	alice.call("PUT", "/v1/groups/"+gid+"/members/dave/mute", map[string]any{"until": time.Now().Add(time.Minute).UnixMilli()}, 204)
	dave.call("POST", "/v1/messages", map[string]any{"to_group": gid, "text": "muted"}, 403)
	alice.call("POST", "/v1/messages", map[string]any{"to_group": gid, "text": "group hello"}, 200)
	alice.call("DELETE", "/v1/groups/"+gid+"/members/dave", nil, 204)
	alice.call("POST", "/v1/groups/"+gid+"/owner", map[string]string{"username": "bob"}, 204)
	bob.call("GET", "/v1/conversations/"+gid+"/messages?limit=100", nil, 200) // the events
	g2 := bob.call("POST", "/v1/groups", map[string]any{"name": "open", "join_policy": "open"}, 201)
	carol.call("POST", "/v1/groups/"+str(g2, "id")+"/join", nil, 200)
	bob.call("DELETE", "/v1/groups/"+str(g2, "id"), nil, 204)
	carol.call("GET", "/v1/groups/sync?since=0&limit=10", nil, 200) // with the dissolved group
	dave.call("GET", "/v1/groups/sync", nil, 200)                   // dave was removed
	carol.call("GET", "/v1/groups/"+gid, nil, 403)                  // not a member
	carol.call("GET", "/v1/groups/g_999999", nil, 404)

	// Sessions.
	phone := anon.call("POST", "/v1/login", map[string]string{"username": "alice", "password": "password-alice", "device": "phone"}, 200)
	alice.call("GET", "/v1/sessions", nil, 200)
	alice.call("DELETE", "/v1/sessions/"+str(phone, "session_id"), nil, 204)
	dave.call("POST", "/v1/password", map[string]string{"old": "password-dave", "new": "password-dave-2"}, 204)
	spare := anon.call("POST", "/v1/login", map[string]string{"username": "carol", "password": "password-carol", "device": "spare"}, 200)
	anon.as("carol", str(spare, "token")).call("POST", "/v1/logout", nil, 204)
	alice.call("POST", "/v1/logout?all=maybe", nil, 400)

	// The signed push API.
	anon.signed("POST", "/v1/push", "crm", pushSecret, `{"to_users":["alice"],"text":"ship","transient":true}`, 200)
	carol.call("POST", "/v1/blocks", map[string]string{"username": "alice"}, 204)
	if m := anon.signed("POST", "/v1/push", "crm", pushSecret, `{"to_users":["bob","carol"],"text":"stored","from":"alice","push_id":"p1"}`, 200); num(m, "stored") != 1 {
		t.Errorf("stored push = %v, want bob's ack and carol's error", m)
	}
	carol.call("DELETE", "/v1/blocks/alice", nil, 204)
	anon.signed("POST", "/v1/push", "crm", "not-the-secret-0123", `{"to_users":["bob"],"text":"x"}`, 401)

	// The signed admin API.
	hash, err := bcrypt.GenerateFromPassword([]byte("password-imp"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	imp, _ := json.Marshal(map[string]any{"users": []map[string]any{
		{"username": "imp1", "password_hash": string(hash), "display_name": "Imp", "custom": map[string]string{"k": "v"}},
		{"username": "alice", "password_hash": string(hash)},
		{"username": "bad name!", "password_hash": string(hash)},
	}})
	anon.signed("POST", "/v1/admin/users/import", "ops", adminSecret, string(imp), 200)
	anon.signed("POST", "/v1/admin/friendships/import", "ops", adminSecret,
		`{"friendships":[{"user":"imp1","friend":"alice"},{"user":"imp1","friend":"nobody"}]}`, 200)
	anon.signed("POST", "/v1/admin/groups/import", "ops", adminSecret,
		`{"groups":[{"id":"ext-1","name":"imported","owner":"alice","members":[{"username":"imp1"},{"username":"bob","role":"admin"}]},{"id":"ext-2","name":"x","owner":"nobody"}]}`, 200)
	anon.signed("POST", "/v1/admin/users/list", "ops", adminSecret, `{"limit":2}`, 200)
	anon.signed("POST", "/v1/admin/users/list", "ops", adminSecret, `{"query":"imp"}`, 200)
	anon.signed("POST", "/v1/admin/users/disable", "ops", adminSecret, `{"username":"imp1"}`, 200)
	anon.signed("POST", "/v1/admin/users/delete", "ops", adminSecret, `{"username":"imp1","erase_messages":true}`, 200)
	anon.signed("POST", "/v1/admin/users/list", "ops", adminSecret, `{"query":"imp1"}`, 200) // a deleted user
	anon.signed("POST", "/v1/admin/messages/remove", "ops", adminSecret, fmt.Sprintf(`{"conversation_id":%q,"seq":2}`, conv), 200)
	anon.signed("POST", "/v1/admin/apps", "ops", adminSecret,
		`{"name":"acme","settings":{"device_policy":"single","require_friendship":true,"webhook_urls":["http://127.0.0.1:1/hook"],"webhook_secret":"whsec-0123456789abcdef"}}`, 201)
	anon.signed("GET", "/v1/admin/apps", "ops", adminSecret, "", 200)
	anon.signed("POST", "/v1/admin/apps/settings", "ops", adminSecret,
		`{"name":"acme","settings":{"max_group_size":50,"auth":["local"],"before_send_url":"http://127.0.0.1:1/veto","webhook_secret":"whsec-0123456789abcdef"}}`, 200)
	anon.signed("POST", "/v1/admin/apps/keys", "ops", adminSecret, `{"name":"acme"}`, 200)
	anon.signed("POST", "/v1/admin/users/list", "ops", adminSecret, `{"limit":2,"bogus":1}`, 400, badRequestHeader, "1")

	// Last: the logouts.
	bob.call("POST", "/v1/logout?all=true", nil, 204)
	bob.call("GET", "/v1/conversations", nil, 401)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var never, no2xx []string
	for _, route := range n.api.Routes() {
		switch {
		case rec.hits[route] == 0:
			never = append(never, route)
		case rec.ok2xx[route] == 0 && openAPINo2xx[route] == "":
			no2xx = append(no2xx, route)
		}
	}
	sort.Strings(never)
	sort.Strings(no2xx)
	if len(never) > 0 {
		t.Errorf("routes the run never reached: %v", never)
	}
	if len(no2xx) > 0 {
		t.Errorf("routes reached without a success answer: %v", no2xx)
	}
	for route, why := range openAPINo2xx {
		t.Logf("allowed without a success answer: %s (%s)", route, why)
	}
	// The check can fail: a real answer with one field dropped, one added
	// and one of the wrong type is refused.
	var convs map[string]any
	if err := json.Unmarshal(rec.last["GET /v1/conversations"], &convs); err != nil {
		t.Fatal(err)
	}
	c0 := convs["conversations"].([]any)[0].(map[string]any)
	for _, tamper := range []func(){
		func() { delete(c0, "unread") },
		func() { c0["surprise"] = 1 },
		func() { c0["last_message"] = "text" },
	} {
		saved := maps.Clone(c0)
		tamper()
		b, _ := json.Marshal(convs)
		if _, err := rec.doc.CheckResponse("GET", "/v1/conversations", 200, "application/json", b); err == nil {
			t.Errorf("a tampered answer passed: %s", b)
		}
		maps.Copy(c0, saved)
		for k := range c0 {
			if _, ok := saved[k]; !ok {
				delete(c0, k)
			}
		}
	}
	t.Logf("%d answers checked against openapi.json, %d routes", rec.checks, len(rec.hits))
}
