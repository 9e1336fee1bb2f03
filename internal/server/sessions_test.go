package server

import (
	"bytes"
	"errors"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/chat"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// liveConn is a hand-written client on one transport that records how its
// connection ended: the kick, when it was read, and the WebSocket close code.
type liveConn struct {
	t     *testing.T
	write func(*magpiepb.Envelope) error
	pongs chan uint64
	done  chan struct{}

	mu       sync.Mutex
	kick     *magpiepb.Kick
	kickedAt time.Time
	wsClose  int
}

// connect authenticates tok over transport ("tcp" or "ws") and watches the
// connection in the background.
func connect(t *testing.T, n *Node, transport, tok string) *liveConn {
	t.Helper()
	c := &liveConn{t: t, pongs: make(chan uint64, 16), done: make(chan struct{})}
	var read func() ([]byte, error)
	switch transport {
	case "tcp":
		nc, err := net.Dial("tcp", n.TCPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		r := wire.NewReader(nc, 0, 0)
		read = r.ReadFrame
		c.write = func(env *magpiepb.Envelope) error {
			b, _ := proto.Marshal(env)
			_, err := nc.Write(wire.AppendFrame(nil, b))
			return err
		}
	case "ws":
		d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolProto}}
		ws, resp, err := d.Dial("ws://"+n.HTTPAddr()+"/v1/ws", nil)
		if err != nil {
			t.Fatalf("dial ws: %v", err)
		}
		resp.Body.Close()
		t.Cleanup(func() { ws.Close() })
		read = func() ([]byte, error) {
			_, b, err := ws.ReadMessage()
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.mu.Lock()
				c.wsClose = ce.Code
				c.mu.Unlock()
			}
			return b, err
		}
		var wmu sync.Mutex
		c.write = func(env *magpiepb.Envelope) error {
			b, _ := proto.Marshal(env)
			wmu.Lock()
			defer wmu.Unlock()
			return ws.WriteMessage(websocket.BinaryMessage, b)
		}
	}
	if err := c.write(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}}); err != nil {
		t.Fatal(err)
	}
	b, err := read()
	var env magpiepb.Envelope
	if err != nil || proto.Unmarshal(b, &env) != nil || env.GetAuthOk() == nil {
		t.Fatalf("auth over %s: %v %v", transport, &env, err)
	}
	go func() {
		defer close(c.done)
		for {
			b, err := read()
			if err != nil {
				return
			}
			var env magpiepb.Envelope
			if proto.Unmarshal(b, &env) != nil {
				return
			}
			switch {
			case env.GetKick() != nil:
				c.mu.Lock()
				c.kick, c.kickedAt = env.GetKick(), time.Now()
				c.mu.Unlock()
			case env.GetPong() != nil:
				c.pongs <- env.Id
			}
		}
	}()
	return c
}

// closedBy waits for the connection to close and returns its kick and when
// it arrived.
func (c *liveConn) closedBy(what string) (*magpiepb.Kick, time.Time) {
	c.t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: connection still open", what)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kick == nil {
		c.t.Fatalf("%s: closed without a kick", what)
	}
	return c.kick, c.kickedAt
}

// alive checks that the connection still answers a ping.
func (c *liveConn) alive(what string) {
	c.t.Helper()
	if err := c.write(&magpiepb.Envelope{Id: 77, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: 1}}}); err != nil {
		c.t.Fatalf("%s: ping: %v", what, err)
	}
	select {
	case <-c.pongs:
	case <-c.done:
		c.t.Fatalf("%s: connection closed, want it open", what)
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s: no pong", what)
	}
}

// authCode dials TCP, authenticates with tok and returns the error code
// of the answer (0 for AuthOK).
func authCode(t *testing.T, n *Node, tok string) wire.Code {
	t.Helper()
	nc := rawTCP(t, n)
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	s := &rawSession{t: t, r: wire.NewReader(nc, 0, 0), w: func(b []byte) { _, _ = nc.Write(b) }}
	got := s.call(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}})
	return wire.Code(got.GetError().GetCode())
}

// login logs u in again as another device and returns that session's
// token and id.
func (u *httpUser) login(device string) (token, session string) {
	u.t.Helper()
	r := u.do("POST", "/v1/login", map[string]string{"username": u.name, "password": "password-" + u.name, "device": device})
	if r.status != 200 {
		u.t.Fatalf("login %s/%s: %d %v", u.name, device, r.status, r.body)
	}
	return r.str("token"), r.str("session_id")
}

func (u *httpUser) as(token string) *httpUser {
	v := *u
	v.token = token
	return &v
}

// Every way of ending sessions closes their live connections, TCP and
// WebSocket, within 1 s of the HTTP answer, with logged_out and a reason
// that says which; the tokens stop working at once; the sessions not ended
// stay connected.
func TestEndedSessionsCloseWithinOneSecond(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	tests := []struct {
		name   string
		act    func(u *httpUser, sessions map[string]string) reply // u is the "phone" session
		ended  []string                                            // devices whose sessions end
		reason string
	}{
		{"logout", func(u *httpUser, _ map[string]string) reply { return u.do("POST", "/v1/logout", nil) },
			[]string{"phone"}, "logged out"},
		{"logout all", func(u *httpUser, _ map[string]string) reply { return u.do("POST", "/v1/logout?all=true", nil) },
			[]string{"phone", "laptop", "tablet"}, "logged out everywhere"},
		{"delete", func(u *httpUser, s map[string]string) reply { return u.do("DELETE", "/v1/sessions/"+s["laptop"], nil) },
			[]string{"laptop"}, "session ended"},
		{"password", func(u *httpUser, _ map[string]string) reply {
			return u.do("POST", "/v1/password", map[string]string{"old": "password-" + u.name, "new": "password-" + u.name})
		}, []string{"laptop", "tablet"}, "password changed"},
	}
	for i, tt := range tests {
		for _, transport := range []string{"tcp", "ws"} {
			t.Run(tt.name+"/"+transport, func(t *testing.T) {
				name := "u" + string(rune('a'+i)) + transport
				u := signup(t, n, name, true)
				tokens, sessions, conns := map[string]string{}, map[string]string{}, map[string]*liveConn{}
				for _, dev := range []string{"phone", "laptop", "tablet"} {
					tokens[dev], sessions[dev] = u.login(dev)
					conns[dev] = connect(t, n, transport, tokens[dev])
				}
				r := tt.act(u.as(tokens["phone"]), sessions)
				answered := time.Now()
				if r.status != 204 {
					t.Fatalf("%s: %d %v, want 204", tt.name, r.status, r.body)
				}
				for dev, c := range conns {
					if !slices.Contains(tt.ended, dev) {
						continue
					}
					k, at := c.closedBy(dev)
					if wire.Code(k.Code) != wire.CodeLoggedOut || k.Reconnect || !strings.Contains(k.Reason, tt.reason) {
						t.Errorf("%s: kick %v, want logged_out (no reconnect) saying %q", dev, k, tt.reason)
					}
					if d := at.Sub(answered); d > time.Second {
						t.Errorf("%s: closed %v after the answer, want within 1s", dev, d)
					}
					if transport == "ws" {
						c.mu.Lock()
						code := c.wsClose
						c.mu.Unlock()
						if code != 4000+int(wire.CodeLoggedOut) {
							t.Errorf("%s: WebSocket close %d, want %d", dev, code, 4000+int(wire.CodeLoggedOut))
						}
					}
					if got := u.as(tokens[dev]).do("GET", "/v1/sessions", nil); got.status != 401 {
						t.Errorf("%s: token after the session ended: %d, want 401", dev, got.status)
					}
					if code := authCode(t, n, tokens[dev]); code != wire.CodeUnauthenticated {
						t.Errorf("%s: auth with the ended session's token: code %v, want unauthenticated", dev, code)
					}
				}
				for dev, c := range conns {
					if !slices.Contains(tt.ended, dev) {
						c.alive(dev)
						if got := u.as(tokens[dev]).do("GET", "/v1/sessions", nil); got.status != 200 {
							t.Errorf("%s: token of a session not ended: %d, want 200", dev, got.status)
						}
					}
				}
			})
		}
	}
}

// GET /v1/sessions lists the caller's active sessions with the current one
// marked and a last-seen time; DELETE works only on the caller's own
// sessions; the password change checks the old password.
func TestSessionListDeleteAndPassword(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	alice, bob := signup(t, n, "alice", true), signup(t, n, "bob", true)
	phoneTok, phone := alice.login("phone")
	laptopTok, laptop := alice.login("laptop")
	_, bobs := bob.login("bob-phone")
	connect(t, n, "tcp", laptopTok)
	me := alice.as(phoneTok)

	r := me.do("GET", "/v1/sessions", nil)
	list, _ := r.body["sessions"].([]any)
	if r.status != 200 || len(list) != 3 { // "http" (signup), phone, laptop
		t.Fatalf("GET /v1/sessions: %d %v, want 3 sessions", r.status, r.body)
	}
	byID := map[string]map[string]any{}
	for _, s := range list {
		m := s.(map[string]any)
		byID[m["id"].(string)] = m
		for _, k := range []string{"device", "platform", "created_at", "last_seen", "expires_at", "online", "current"} {
			if _, ok := m[k]; !ok {
				t.Errorf("session %v has no %q", m, k)
			}
		}
	}
	if byID[phone]["current"] != true || byID[laptop]["current"] != false || byID[phone]["device"] != "phone" {
		t.Errorf("sessions %v: want phone current, laptop not", list)
	}
	if byID[laptop]["online"] != true || byID[phone]["online"] != false {
		t.Errorf("sessions %v: want laptop online (its connection), phone not", list)
	}
	if _, ok := byID[bobs]; ok {
		t.Errorf("alice's list shows bob's session: %v", list)
	}

	for _, id := range []string{bobs, "nope"} {
		if r := me.do("DELETE", "/v1/sessions/"+id, nil); r.status != 404 || r.code() != "not_found" {
			t.Errorf("DELETE someone else's or an unknown session: %d %v, want 404", r.status, r.body)
		}
	}
	if r := bob.do("GET", "/v1/sessions", nil); r.status != 200 || len(r.body["sessions"].([]any)) != 2 {
		t.Errorf("bob's sessions after alice tried to end one: %d %v", r.status, r.body)
	}
	if r := me.do("DELETE", "/v1/sessions/"+laptop, nil); r.status != 204 {
		t.Fatalf("DELETE my laptop: %d %v", r.status, r.body)
	}
	if r := me.do("DELETE", "/v1/sessions/"+laptop, nil); r.status != 404 {
		t.Errorf("DELETE an ended session: %d, want 404", r.status)
	}
	r = me.do("GET", "/v1/sessions", nil)
	if list, _ := r.body["sessions"].([]any); len(list) != 2 {
		t.Errorf("after DELETE: %v, want 2 sessions", r.body)
	}

	for _, tc := range []struct {
		body   map[string]string
		status int
		code   string
	}{
		{map[string]string{"old": "wrong-password", "new": "new-password"}, 401, "invalid_credentials"},
		{map[string]string{"old": "password-alice", "new": "short"}, 400, "bad_request"},
		{map[string]string{"new": "new-password"}, 400, "bad_request"},
	} {
		if r := me.do("POST", "/v1/password", tc.body); r.status != tc.status || r.code() != tc.code {
			t.Errorf("POST /v1/password %v: %d %v, want %d %s", tc.body, r.status, r.body, tc.status, tc.code)
		}
	}
	if r := me.do("POST", "/v1/password", map[string]string{"old": "password-alice", "new": "new-password"}); r.status != 204 {
		t.Fatalf("change password: %d %v", r.status, r.body)
	}
	for pw, want := range map[string]int{"password-alice": 401, "new-password": 200} {
		if r := me.do("POST", "/v1/login", map[string]string{"username": "alice", "password": pw, "device": "x"}); r.status != want {
			t.Errorf("login with %q after the change: %d, want %d", pw, r.status, want)
		}
	}
	if r := me.do("GET", "/v1/sessions", nil); r.status != 200 {
		t.Errorf("the session that changed the password: %d, want it kept", r.status)
	}
}

// A session's last-seen time is stored when it authenticates, so after its
// connection closed it still shows a time past its creation.
func TestSessionLastSeenIsStored(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	alice := signup(t, n, "alice", true)
	tok, id := alice.login("phone")
	created := time.Now()
	for time.Since(created) < 5*time.Millisecond { // the clock must move past the creation (ms)
		time.Sleep(time.Millisecond)
	}
	nc := rawTCP(t, n)
	s := &rawSession{t: t, r: wire.NewReader(nc, 0, 0), w: func(b []byte) { _, _ = nc.Write(b) }}
	if got := s.call(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: tok}}}); got.GetAuthOk() == nil {
		t.Fatalf("auth: %v", got)
	}
	nc.Close()
	var phone map[string]any
	waitFor(t, "phone offline with its last_seen stored", func() bool {
		r := alice.do("GET", "/v1/sessions", nil) // from the other session
		for _, s := range r.body["sessions"].([]any) {
			if m := s.(map[string]any); m["id"] == id && m["online"] == false {
				phone = m
				return m["last_seen"].(float64) > m["created_at"].(float64)
			}
		}
		return false
	})
	if seen := phone["last_seen"].(float64); seen > float64(time.Now().UnixMilli()) {
		t.Errorf("last_seen %v is in the future", seen)
	}
}

// A connection whose token expires is closed at expiry with
// session_expired (WebSocket close 4026), though it only pings.
func TestTokenExpiryClosesLiveConnections(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.TokenTTL = 2 * time.Second // below --token-ttl's minimum: tests only
	n := startNode(t, cfg)
	alice := signup(t, n, "alice", true)
	expires := time.Now().Add(cfg.TokenTTL)
	conns := map[string]*liveConn{}
	for _, transport := range []string{"tcp", "ws"} {
		conns[transport] = connect(t, n, transport, alice.token)
		conns[transport].alive(transport)
	}
	for transport, c := range conns {
		k, at := c.closedBy(transport)
		if wire.Code(k.Code) != wire.CodeSessionExpired || k.Reconnect {
			t.Errorf("%s: kick %v, want session_expired without reconnect", transport, k)
		}
		if at.Before(expires.Add(-time.Second)) {
			t.Errorf("%s: closed %v before the token expired", transport, expires.Sub(at))
		}
		if transport == "ws" {
			c.mu.Lock()
			code := c.wsClose
			c.mu.Unlock()
			if code != 4000+int(wire.CodeSessionExpired) {
				t.Errorf("WebSocket close %d, want %d", code, 4000+int(wire.CodeSessionExpired))
			}
		}
	}
}

// The SDK's session calls against the real server, and its reaction to
// each ending: another device's EndSession and LogoutAll stop it
// (logged_out: give up), ChangePassword keeps the caller and its new
// password logs in.
func TestSDKSessions(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	ctx := t.Context()
	a, _ := newClient(t, n, "alice", "a", "tcp", true)
	b, _ := newClient(t, n, "alice", "b", "ws", false)
	c, _ := newClient(t, n, "alice", "c", "tcp", false)
	list, err := a.Sessions(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("Sessions: %v %v, want 3", list, err)
	}
	ids := map[string]string{}
	for _, s := range list {
		ids[s.Device] = s.ID
		if s.Current != (s.Device == "a") || !s.Online || s.CreatedAt.IsZero() || s.LastSeen.Before(s.CreatedAt) {
			t.Errorf("session %+v: want online, current only for a, last seen after created", s)
		}
	}
	if err := a.EndSession(ctx, ids["b"]); err != nil {
		t.Fatalf("EndSession: %v", err)
	}
	waitFor(t, "b closed", func() bool { return b.State() == client.StateClosed })
	var e *client.Error
	if err := a.EndSession(ctx, "nope"); !errors.As(err, &e) || e.Code != wire.CodeNotFound {
		t.Errorf("EndSession(unknown): %v, want not_found", err)
	}
	if err := a.ChangePassword(ctx, "wrong", "new-password"); !errors.As(err, &e) || e.Code != wire.CodeInvalidCredential {
		t.Errorf("ChangePassword(wrong old): %v, want invalid_credentials", err)
	}
	if err := a.ChangePassword(ctx, "password-alice", "new-password"); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	waitFor(t, "c closed by the password change", func() bool { return c.State() == client.StateClosed })
	if a.State() != client.StateReady {
		t.Errorf("a after its own password change: %v, want ready", a.State())
	}
	d := client.New(client.Options{Server: "http://" + n.HTTPAddr(), Username: "alice", Password: "new-password", Device: "d"})
	if err := d.Connect(ctx); err != nil {
		t.Fatalf("connect with the new password: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	if err := a.LogoutAll(ctx); err != nil {
		t.Fatalf("LogoutAll: %v", err)
	}
	waitFor(t, "d closed by LogoutAll", func() bool { return d.State() == client.StateClosed })
	if a.State() != client.StateClosed {
		t.Errorf("a after LogoutAll: %v, want closed", a.State())
	}
}

// At session_expired the SDK logs in again (the action says so) and keeps
// working; it does not stop, nor offer the dead token again.
func TestSDKLogsInAgainAtExpiry(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.TokenTTL = 2 * time.Second
	n := startNode(t, cfg)
	for _, transport := range []string{"tcp", "ws"} {
		t.Run(transport, func(t *testing.T) {
			var mu sync.Mutex
			var states []string
			name := "alice" + transport
			if _, err := client.Register(t.Context(), "http://"+n.HTTPAddr(), name, "password-"+name); err != nil {
				t.Fatal(err)
			}
			c := client.New(client.Options{Server: "http://" + n.HTTPAddr(), Username: name, Password: "password-" + name,
				Transport: transport, BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
				OnState: func(s client.State, err error) {
					mu.Lock()
					defer mu.Unlock()
					var e *client.Error
					if errors.As(err, &e) {
						states = append(states, s.String()+":"+e.Code.String())
					} else {
						states = append(states, s.String())
					}
				}})
			if err := c.Connect(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			waitFor(t, "kicked at expiry and ready again", func() bool {
				mu.Lock()
				defer mu.Unlock()
				i := slices.Index(states, "reconnecting:session_expired")
				return i >= 0 && slices.Contains(states[i:], "ready")
			})
			mu.Lock()
			defer mu.Unlock()
			if slices.Contains(states, "closed") {
				t.Fatalf("states %v: the client stopped", states)
			}
		})
	}
}

// The terminal client's :sessions and :logout-all against the real server.
func TestChatSessionCommands(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	other, _ := newClient(t, n, "alice", "phone", "tcp", true)
	t.Setenv("MAGPIE_PASSWORD", "password-alice")
	var out, errw bytes.Buffer
	err := chat.Run(t.Context(), []string{"--server", "http://" + n.HTTPAddr(), "--user", "alice", "--device", "cli"},
		strings.NewReader(":sessions\n:logout-all\n"), &out, &errw)
	if err != nil {
		t.Fatalf("chat: %v\nstderr:\n%s", err, errw.String())
	}
	for _, want := range []string{`(?m)^session: \w+ phone, online$`, `(?m)^session: \w+ cli, this one$`, `(?m)^logged out everywhere$`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("stdout lacks %s:\n%s", want, out.String())
		}
	}
	waitFor(t, "the phone closed", func() bool { return other.State() == client.StateClosed })
}

// In a cluster (logic and gateways apart, over NATS) logging out
// everywhere closes the user's connections on every gateway within 1 s.
func TestLogoutAllAcrossGateways(t *testing.T) {
	logic, gws := clusterOf(t, "gw-a", "gw-b")
	u := signup(t, logic, "alice", true)
	tokA, _ := u.login("a")
	tokB, _ := u.login("b")
	conns := map[string]*liveConn{"gw-a tcp": connect(t, gws["gw-a"], "tcp", tokA), "gw-b ws": connect(t, gws["gw-b"], "ws", tokB)}
	r := u.do("POST", "/v1/logout?all=true", nil)
	answered := time.Now()
	if r.status != 204 {
		t.Fatalf("logout all: %d %v", r.status, r.body)
	}
	for name, c := range conns {
		k, at := c.closedBy(name)
		if wire.Code(k.Code) != wire.CodeLoggedOut {
			t.Errorf("%s: kick %v, want logged_out", name, k)
		}
		if d := at.Sub(answered); d > time.Second {
			t.Errorf("%s: closed %v after the answer, want within 1s", name, d)
		}
	}
}
