package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// httpUser is a logged-in user of the HTTP API.
type httpUser struct {
	t     *testing.T
	base  string
	name  string
	token string
}

// reply is a decoded JSON answer.
type reply struct {
	status int
	body   map[string]any
}

func (r reply) code() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }
func (r reply) num(key string) uint64 { f, _ := r.body[key].(float64); return uint64(f) }

// signup registers (if asked) and logs in name over HTTP. The password
// matches newClient's, so the SDK and HTTP can act as the same user.
func signup(t *testing.T, n *Node, name string, register bool) *httpUser {
	t.Helper()
	u := &httpUser{t: t, base: "http://" + n.HTTPAddr(), name: name}
	pw := "password-" + name
	if register {
		if r := u.do("POST", "/v1/users", map[string]string{"username": name, "password": pw}); r.status != 201 {
			t.Fatalf("register %s: %d %v", name, r.status, r.body)
		}
	}
	r := u.do("POST", "/v1/login", map[string]string{"username": name, "password": pw, "device": "http"})
	if r.status != 200 {
		t.Fatalf("login %s: %d %v", name, r.status, r.body)
	}
	u.token = r.str("token")
	return u
}

func (u *httpUser) do(method, path string, body any) reply {
	u.t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, u.base+path, rd)
	if u.token != "" {
		req.Header.Set("Authorization", "Bearer "+u.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		u.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := reply{status: resp.StatusCode, body: map[string]any{}}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	return out
}

// history returns the seqs and event types of what u may read.
func (u *httpUser) history(conv string) (seqs []uint64, events []string, last uint64, status int) {
	r := u.do("GET", "/v1/conversations/"+conv+"/messages?limit=500", nil)
	msgs, _ := r.body["messages"].([]any)
	for _, m := range msgs {
		mm := m.(map[string]any)
		seqs = append(seqs, uint64(mm["seq"].(float64)))
		if ev, ok := mm["event"].(map[string]any); ok {
			events = append(events, ev["type"].(string))
		}
	}
	return seqs, events, r.num("last_seq"), r.status
}

func TestGroupConversationLive(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	alice, aliceBox := newClient(t, n, "alice", "laptop", "tcp", true)
	_, alicePhone := newClient(t, n, "alice", "phone", "ws", false)
	_, bobBox := newClient(t, n, "bob", "phone", "ws", true)
	_, carolBox := newClient(t, n, "carol", "desk", "tcp", true)
	signup(t, n, "dave", true)
	aliceHTTP, bobHTTP := signup(t, n, "alice", false), signup(t, n, "bob", false)

	r := aliceHTTP.do("POST", "/v1/groups", map[string]any{"name": "trio", "members": []string{"bob", "carol"}})
	if r.status != 201 || r.num("member_count") != 3 || r.str("owner") != "alice" {
		t.Fatalf("create group: %d %v", r.status, r.body)
	}
	gid := r.str("id")

	for i := 1; i <= 3; i++ {
		ack, err := alice.Send(ctx, client.SendRequest{ToGroup: gid, Text: fmt.Sprint("hi all ", i)})
		if err != nil || ack.Seq != uint64(i+1) {
			t.Fatalf("group send %d: %+v %v", i, ack, err)
		}
	}
	want := "hi all 1,hi all 2,hi all 3"
	texts := func(b *inbox) string {
		var out []string
		for _, tx := range b.texts() {
			if strings.HasPrefix(tx, "hi all") {
				out = append(out, tx)
			}
		}
		return strings.Join(out, ",")
	}
	for name, box := range map[string]*inbox{"bob": bobBox, "carol": carolBox, "alice's phone": alicePhone} {
		waitFor(t, name+"'s group messages", func() bool { return texts(box) == want })
	}
	if got := texts(aliceBox); got != "" {
		t.Errorf("the sending device got its own messages: %v", got)
	}

	// One stored copy: every member sees the same gap-free seqs.
	seqs, _, last, _ := bobHTTP.history(gid)
	if !slices.Equal(seqs, []uint64{1, 2, 3, 4}) || last != 4 {
		t.Errorf("bob's history seqs = %v (last %d), want 1..4", seqs, last)
	}

	// A membership change is an event in the stream, live and in history.
	if r := aliceHTTP.do("POST", "/v1/groups/"+gid+"/members", map[string]any{"usernames": []string{"dave"}}); r.status != 200 || r.num("member_count") != 4 {
		t.Fatalf("add dave: %d %v", r.status, r.body)
	}
	waitFor(t, "bob sees the added event", func() bool {
		bobBox.mu.Lock()
		defer bobBox.mu.Unlock()
		for _, m := range bobBox.msgs {
			if m.Event != nil && m.Event.Type == "added" && slices.Equal(m.Event.Usernames, []string{"dave"}) {
				return true
			}
		}
		return false
	})
	if _, events, _, _ := bobHTTP.history(gid); !slices.Equal(events, []string{"created", "added"}) {
		t.Errorf("events in bob's history = %v, want created, added", events)
	}

	// Read counts: bob read seq 4; carol did not.
	if r := bobHTTP.do("POST", "/v1/conversations/"+gid+"/read", map[string]any{"seq": 4}); r.status != 200 {
		t.Fatalf("bob reads: %d %v", r.status, r.body)
	}
	r = aliceHTTP.do("GET", "/v1/conversations/"+gid+"/messages/4/reads", nil)
	if r.status != 200 || r.num("read_count") != 1 || r.num("member_count") != 2 || fmt.Sprint(r.body["readers"]) != "[bob]" {
		t.Errorf("reads of seq 4 = %d %v; want bob of 2", r.status, r.body)
	}

	// A recall converges on every device and in history.
	if r := aliceHTTP.do("POST", "/v1/conversations/"+gid+"/messages/2/recall", nil); r.status != 200 || r.num("seq") != 6 {
		t.Fatalf("recall: %d %v", r.status, r.body)
	}
	waitFor(t, "carol gets the recall", func() bool {
		carolBox.mu.Lock()
		defer carolBox.mu.Unlock()
		return slices.ContainsFunc(carolBox.msgs, func(m client.Message) bool { return m.Kind == client.KindRecall && m.RefSeq == 2 })
	})
	r = bobHTTP.do("GET", "/v1/conversations/"+gid+"/messages?after_seq=1&limit=1", nil)
	if m := r.body["messages"].([]any)[0].(map[string]any); m["recalled"] != true || m["text"] != "" {
		t.Errorf("recalled original in history = %v", m)
	}

	// Flags are per user and reach the user's other devices.
	if r := aliceHTTP.do("PATCH", "/v1/conversations/"+gid, map[string]any{"pinned": true}); r.status != 200 || r.body["pinned"] != true || r.str("name") != "trio" {
		t.Fatalf("pin: %d %v", r.status, r.body)
	}
	convs, err := alice.Conversations(ctx)
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations: %+v %v", convs, err)
	}
}

func TestBroadcastOverHTTP(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Admins = []string{"root"}
	n := startNode(t, cfg)
	_, bobBox := newClient(t, n, "bob", "phone", "tcp", true)
	root, alice := signup(t, n, "root", true), signup(t, n, "alice", true)
	if r := alice.do("POST", "/v1/messages", map[string]any{"broadcast": true, "text": "me too"}); r.status != 403 || r.code() != "forbidden" {
		t.Errorf("broadcast by a non-admin: %d %q", r.status, r.code())
	}
	if r := root.do("POST", "/v1/messages", map[string]any{"broadcast": true, "text": "going down at 5"}); r.status != 200 || r.num("seq") != 0 {
		t.Fatalf("admin broadcast: %d %v", r.status, r.body)
	}
	waitFor(t, "bob gets the broadcast", func() bool {
		bobBox.mu.Lock()
		defer bobBox.mu.Unlock()
		return slices.ContainsFunc(bobBox.msgs, func(m client.Message) bool { return m.Transient && m.Text == "going down at 5" })
	})
}

// TestGroupAuthorization is the bad-input and authorization list,
// each with its exact answer. RecallWindow 0: senders may never recall.
func TestGroupAuthorization(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxGroupSize = 4
	cfg.RecallWindow = 0
	n := startNode(t, cfg)
	alice, bob, carol, dave, eve := signup(t, n, "alice", true), signup(t, n, "bob", true), signup(t, n, "carol", true),
		signup(t, n, "dave", true), signup(t, n, "eve", true)

	r := alice.do("POST", "/v1/groups", map[string]any{"name": "team", "members": []string{"bob", "carol"}})
	if r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	g := "/v1/groups/" + r.str("id")
	conv := r.str("id")
	send := func(u *httpUser, body map[string]any) reply { return u.do("POST", "/v1/messages", body) }
	if r := send(carol, map[string]any{"to_group": conv, "text": "carol was here"}); r.status != 200 || r.num("seq") != 2 {
		t.Fatalf("member send: %d %v", r.status, r.body)
	}

	steps := []struct {
		name       string
		call       func() reply
		wantStatus int
		wantCode   string
	}{
		{"send to a group you are not in", func() reply { return send(dave, map[string]any{"to_group": conv, "text": "hi"}) }, 403, "not_member"},
		{"send to a group that does not exist", func() reply { return send(dave, map[string]any{"to_group": "g_999", "text": "hi"}) }, 403, "not_member"},
		{"spoofed sender fields are ignored", func() reply {
			return send(bob, map[string]any{"to_group": conv, "text": "from bob", "sender": "alice", "sender_id": 1, "from": "alice"})
		}, 200, ""},
		{"read a group's history as an outsider", func() reply { return dave.do("GET", "/v1/conversations/"+conv+"/messages", nil) }, 403, "not_member"},
		{"promote yourself", func() reply { return bob.do("PUT", g+"/members/bob/role", map[string]any{"role": "admin"}) }, 403, "forbidden"},
		{"owner changes own role", func() reply { return alice.do("PUT", g+"/members/alice/role", map[string]any{"role": "member"}) }, 403, "forbidden"},
		{"member makes another admin", func() reply { return bob.do("PUT", g+"/members/carol/role", map[string]any{"role": "admin"}) }, 403, "forbidden"},
		{"make bob admin", func() reply { return alice.do("PUT", g+"/members/bob/role", map[string]any{"role": "admin"}) }, 204, ""},
		{"admin removes the owner", func() reply { return bob.do("DELETE", g+"/members/alice", nil) }, 403, "forbidden"},
		{"admin takes ownership", func() reply { return bob.do("POST", g+"/owner", map[string]any{"username": "bob"}) }, 403, "forbidden"},
		{"the last owner leaves", func() reply { return alice.do("POST", g+"/leave", nil) }, 409, "conflict"},
		{"the last owner removes herself", func() reply { return alice.do("DELETE", g+"/members/alice", nil) }, 409, "conflict"},
		{"mute carol", func() reply {
			return bob.do("PUT", g+"/members/carol/mute", map[string]any{"until": time.Now().Add(time.Hour).UnixMilli()})
		}, 204, ""},
		{"muted member sends", func() reply { return send(carol, map[string]any{"to_group": conv, "text": "let me speak"}) }, 403, "forbidden"},
		{"add dave", func() reply { return alice.do("POST", g+"/members", map[string]any{"usernames": []string{"dave"}}) }, 200, ""},
		{"group over max size", func() reply { return alice.do("POST", g+"/members", map[string]any{"usernames": []string{"eve"}}) }, 409, "conflict"},
		{"join an invite-only group", func() reply { return eve.do("POST", g+"/join", nil) }, 403, "forbidden"},
		{"edit someone else's message", func() reply {
			return alice.do("POST", "/v1/conversations/"+conv+"/messages/2/edit", map[string]any{"text": "carol said nothing"})
		}, 403, "forbidden"},
		{"recall outside the window", func() reply { return carol.do("POST", "/v1/conversations/"+conv+"/messages/2/recall", nil) }, 403, "forbidden"},
		{"recall another's message as a plain member", func() reply { return carol.do("POST", "/v1/conversations/"+conv+"/messages/3/recall", nil) }, 403, "forbidden"},
		{"recall a message from before you joined", func() reply { return dave.do("POST", "/v1/conversations/"+conv+"/messages/2/recall", nil) }, 404, "not_found"},
		{"an admin recalls any message", func() reply { return bob.do("POST", "/v1/conversations/"+conv+"/messages/2/recall", nil) }, 200, ""},
		{"reads of a message before you joined", func() reply { return dave.do("GET", "/v1/conversations/"+conv+"/messages/2/reads", nil) }, 403, "not_member"},
		{"receipt beyond the last seq", func() reply { return bob.do("POST", "/v1/conversations/"+conv+"/read", map[string]any{"seq": 999}) }, 400, "seq_out_of_range"},
		{"remove carol", func() reply { return alice.do("DELETE", g+"/members/carol", nil) }, 204, ""},
		{"send after removal", func() reply { return send(carol, map[string]any{"to_group": conv, "text": "still here?"}) }, 403, "not_member"},
		{"dissolve by an admin", func() reply { return bob.do("DELETE", g, nil) }, 403, "forbidden"},
		{"bad group id", func() reply { return alice.do("GET", "/v1/groups/g_1.x", nil) }, 400, "bad_request"},
		{"unknown member", func() reply { return alice.do("POST", g+"/members", map[string]any{"usernames": []string{"nobody"}}) }, 404, "not_found"},
	}
	for _, st := range steps {
		r := st.call()
		if r.status != st.wantStatus || r.code() != st.wantCode {
			t.Errorf("%s: got %d %q (%v), want %d %q", st.name, r.status, r.code(), r.body, st.wantStatus, st.wantCode)
		}
	}

	// The spoofed message is bob's.
	r = alice.do("GET", "/v1/conversations/"+conv+"/messages?after_seq=2&limit=1", nil)
	if m := r.body["messages"].([]any)[0].(map[string]any); m["sender"] != "bob" || m["text"] != "from bob" {
		t.Errorf("spoofed message stored as %v, want bob's", m)
	}
	// History windows: dave from his join event on; carol up to her removal.
	dseqs, devents, _, _ := dave.history(conv)
	if len(devents) == 0 || devents[0] != "added" || dseqs[0] <= 3 {
		t.Errorf("dave's history = %v %v, want to start at his join event", dseqs, devents)
	}
	cseqs, cevents, clast, cstatus := carol.history(conv)
	if cstatus != 200 || cevents[len(cevents)-1] != "removed" || cseqs[len(cseqs)-1] != clast {
		t.Errorf("carol's history = %v %v last %d (%d), want up to her removal", cseqs, cevents, clast, cstatus)
	}
	after := send(alice, map[string]any{"to_group": conv, "text": "after carol"})
	if cs, _, clast2, _ := carol.history(conv); clast2 != clast || slices.Contains(cs, after.num("seq")) {
		t.Errorf("carol sees seq %d sent after she left: %v", after.num("seq"), cs)
	}
}

func TestFriendsAndBlocksOverHTTP(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.RequireFriendship = true
	n := startNode(t, cfg)
	alice, bob := signup(t, n, "alice", true), signup(t, n, "bob", true)
	msg := map[string]any{"to_user": "bob", "text": "hi"}
	steps := []struct {
		name       string
		call       func() reply
		wantStatus int
		wantCode   string
	}{
		{"message a stranger", func() reply { return alice.do("POST", "/v1/messages", msg) }, 403, "forbidden"},
		{"request", func() reply { return alice.do("POST", "/v1/friends/requests", map[string]any{"username": "bob"}) }, 201, ""},
		{"accept", func() reply { return bob.do("POST", "/v1/friends/requests/alice/accept", nil) }, 200, ""},
		{"message a friend", func() reply { return alice.do("POST", "/v1/messages", msg) }, 200, ""},
		{"block", func() reply { return bob.do("POST", "/v1/blocks", map[string]any{"username": "alice"}) }, 204, ""},
		{"blocked sender", func() reply { return alice.do("POST", "/v1/messages", msg) }, 403, "blocked"},
		{"unblock", func() reply { return bob.do("DELETE", "/v1/blocks/alice", nil) }, 204, ""},
		{"remove friend", func() reply { return bob.do("DELETE", "/v1/friends/alice", nil) }, 204, ""},
		{"remove again", func() reply { return bob.do("DELETE", "/v1/friends/alice", nil) }, 404, "not_found"},
		{"accept nothing", func() reply { return bob.do("POST", "/v1/friends/requests/alice/accept", nil) }, 404, "not_found"},
	}
	for _, st := range steps {
		r := st.call()
		if r.status != st.wantStatus || r.code() != st.wantCode {
			t.Errorf("%s: got %d %q (%v), want %d %q", st.name, r.status, r.code(), r.body, st.wantStatus, st.wantCode)
		}
	}
	r := alice.do("GET", "/v1/friends", nil)
	for _, k := range []string{"friends", "incoming", "outgoing", "blocked"} {
		if l, ok := r.body[k].([]any); !ok || len(l) != 0 {
			t.Errorf("alice's %s = %v, want an empty list", k, r.body[k])
		}
	}
}
