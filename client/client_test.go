package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/faultproxy"
	"github.com/magpie-im/magpie/internal/testserver"
	"github.com/magpie-im/magpie/proto/wire"
)

// recorder collects what the callbacks saw.
type recorder struct {
	mu       sync.Mutex
	msgs     []Message
	receipts []Receipt
	states   []State
	errs     []error
}

func (r *recorder) options(o *Options) {
	o.OnMessage = func(m Message) { r.mu.Lock(); r.msgs = append(r.msgs, m); r.mu.Unlock() }
	o.OnReceipt = func(rc Receipt) { r.mu.Lock(); r.receipts = append(r.receipts, rc); r.mu.Unlock() }
	o.OnState = func(s State, err error) {
		r.mu.Lock()
		r.states, r.errs = append(r.states, s), append(r.errs, err)
		r.mu.Unlock()
	}
}

func (r *recorder) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, m := range r.msgs {
		out = append(out, fmt.Sprintf("%d:%s", m.Seq, m.Text))
	}
	return out
}

func (r *recorder) count(s State) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, st := range r.states {
		if st == s {
			n++
		}
	}
	return n
}

func newServer(t *testing.T, users ...string) *testserver.Server {
	return testserver.Start(t, nil, users...)
}

func connect(t *testing.T, srv *testserver.Server, user string, mod ...func(*Options)) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{}
	o := Options{Server: srv.URL, Username: user, Password: "pw-" + user,
		BackoffMin: time.Millisecond, BackoffMax: 20 * time.Millisecond}
	rec.options(&o)
	for _, f := range mod {
		f(&o)
	}
	c := New(o)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("%s: Connect: %v", user, err)
	}
	t.Cleanup(func() { c.Close() })
	return c, rec
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantTexts(t *testing.T, rec *recorder, want ...string) {
	t.Helper()
	testserver.WaitFor(t, fmt.Sprintf("messages %v", want), func() bool { return len(rec.texts()) >= len(want) })
	if got := rec.texts(); !slices.Equal(got, want) {
		t.Fatalf("got messages %v, want %v", got, want)
	}
}

// pushTo matches live message pushes to user (not sync or history answers).
func pushTo(user string, f *faultproxy.Frame) bool {
	return f.Dir == faultproxy.ToClient && f.Conn.User() == user && f.Env.GetMessage() != nil
}

// sendTexts sends each text from c to user and returns the conversation id.
func sendTexts(t *testing.T, c *Client, to string, texts ...string) string {
	t.Helper()
	var conv string
	for _, text := range texts {
		ack, err := c.SendText(ctxT(t), to, text)
		if err != nil {
			t.Fatal(err)
		}
		conv = ack.ConversationID
	}
	return conv
}

// stored returns how many messages conversation conv holds, read by c.
func stored(t *testing.T, c *Client, conv string) int {
	t.Helper()
	hist, err := c.History(ctxT(t), conv, HistoryQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(hist)
}

func TestGapIsFilledFromHistory(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, arec := connect(t, srv, "alice")
	bob, brec := connect(t, srv, "bob")
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		if pushTo("bob", f) && f.Env.GetMessage().GetSeq() == 2 {
			return faultproxy.Drop
		}
		return faultproxy.Pass
	})
	conv := sendTexts(t, alice, "bob", "one", "two", "three")
	wantTexts(t, brec, "1:one", "2:two", "3:three")
	// bob's delivered cursor reaches alice as a receipt.
	testserver.WaitFor(t, "delivered receipt", func() bool {
		arec.mu.Lock()
		defer arec.mu.Unlock()
		for _, r := range arec.receipts {
			if r.Kind == Delivered && r.Seq == 3 && r.Username == "bob" {
				return true
			}
		}
		return false
	})
	if got := bob.Cursors(); got[conv] != 3 {
		t.Fatalf("bob's cursors %v, want %s=3", got, conv)
	}
	if got := arec.texts(); len(got) != 0 {
		t.Fatalf("alice got her own sends delivered: %v", got)
	}
	if n := srv.Proxy.Count(func(f *faultproxy.Frame) bool { return f.Env.GetHistory() != nil }); n == 0 {
		t.Fatal("the gap was not filled with a history request")
	}
}

// holdPushes makes the proxy hold user's live pushes and returns a
// function that waits for n of them and returns them.
func holdPushes(t *testing.T, srv *testserver.Server, user string) func(n int) []*faultproxy.Frame {
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		if pushTo(user, f) {
			return faultproxy.Hold
		}
		return faultproxy.Pass
	})
	var held []*faultproxy.Frame
	return func(n int) []*faultproxy.Frame {
		t.Helper()
		testserver.WaitFor(t, fmt.Sprintf("%d held pushes", n), func() bool {
			held = append(held, srv.Proxy.Held()...)
			return len(held) >= n
		})
		return held
	}
}

func TestDuplicatesAreDropped(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	_, rec := connect(t, srv, "bob")
	held := holdPushes(t, srv, "bob")
	sendTexts(t, alice, "bob", "one", "two")
	ms := held(2)
	srv.Proxy.SetRule(nil)
	m1, m2 := ms[0], ms[1]
	if err := srv.Proxy.Release(nil, m1, m1, m2, m1, m2); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, rec, "1:one", "2:two")
	// A reconnect syncs from the cursor and must not repeat anything,
	// not even a late duplicate of an old push on the new connection.
	ready := rec.count(StateReady)
	srv.Proxy.CutAll()
	testserver.WaitFor(t, "reconnect", func() bool { return rec.count(StateReady) > ready && len(srv.Proxy.ConnsOf("bob")) == 1 })
	if err := srv.Proxy.Release(srv.Proxy.ConnsOf("bob")[0], m2); err != nil {
		t.Fatal(err)
	}
	sendTexts(t, alice, "bob", "three")
	wantTexts(t, rec, "1:one", "2:two", "3:three")
}

func TestOutOfOrderPushesAreReordered(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	_, rec := connect(t, srv, "bob")
	held := holdPushes(t, srv, "bob")
	sendTexts(t, alice, "bob", "one", "two", "three")
	ms := held(3)
	srv.Proxy.SetRule(nil)
	if err := srv.Proxy.Release(nil, ms[2], ms[1], ms[0]); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, rec, "1:one", "2:two", "3:three")
}

// cutOnFirstAck cuts the connection instead of passing the first ack of
// each client message id; it counts the attempts seen.
func cutOnFirstAck(srv *testserver.Server) (attempts func(id string) int) {
	var mu sync.Mutex
	acked := map[string]bool{}
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		id := f.Env.GetSendAck().GetClientMsgId()
		if f.Dir != faultproxy.ToClient || id == "" {
			return faultproxy.Pass
		}
		mu.Lock()
		defer mu.Unlock()
		if acked[id] {
			return faultproxy.Pass
		}
		acked[id] = true
		return faultproxy.Cut
	})
	return func(id string) int {
		return srv.Proxy.Count(func(f *faultproxy.Frame) bool {
			e := f.Env
			return f.Dir == faultproxy.ToServer &&
				(e.GetSend().GetClientMsgId() == id || e.GetRecall().GetClientMsgId() == id || e.GetEdit().GetClientMsgId() == id)
		})
	}
}

func TestSendIsRepeatedWithTheSameIDAfterADroppedConnection(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	attempts := cutOnFirstAck(srv)
	ack, err := alice.Send(ctxT(t), SendRequest{ToUser: "bob", Text: "hi", ClientMsgID: "m-1"})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Seq != 1 || !ack.Duplicate || ack.ClientMsgID != "m-1" {
		t.Fatalf("got ack %+v, want seq 1, duplicate, id m-1", ack)
	}
	if n := attempts("m-1"); n != 2 {
		t.Fatalf("got %d send attempts, want 2", n)
	}
	if n := stored(t, alice, ack.ConversationID); n != 1 {
		t.Fatalf("got %d stored messages, want 1", n)
	}
}

func TestReloginWhenTheTokenIsRefused(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, rec := connect(t, srv, "alice")
	if n := srv.Logins(); n != 1 {
		t.Fatalf("got %d logins, want 1", n)
	}
	// The session is revoked (a logout elsewhere with this token) and the
	// kick that says so is lost: the client only sees its connection drop,
	// and its token is refused when it comes back.
	auths := srv.Proxy.Seen(func(f *faultproxy.Frame) bool { return f.Env.GetAuth() != nil })
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		if f.Env.GetKick() != nil {
			return faultproxy.Drop
		}
		return faultproxy.Pass
	})
	srv.Logout(t, auths[0].Env.GetAuth().GetToken())
	testserver.WaitFor(t, "second login and ready", func() bool {
		return srv.Logins() == 2 && rec.count(StateReady) == 2
	})
	if _, err := alice.SendText(ctxT(t), "bob", "still here"); err != nil {
		t.Fatal(err)
	}
}

func TestKickWithoutReconnectStops(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, rec := connect(t, srv, "alice", func(o *Options) { o.Device = "phone" })
	// A login elsewhere with the same device replaces the session: the
	// gateway kicks this one with "replaced", reconnect false.
	srv.Login(t, "alice", "phone")
	testserver.WaitFor(t, "closed", func() bool { return rec.count(StateClosed) == 1 })
	rec.mu.Lock()
	err := rec.errs[len(rec.errs)-1]
	rec.mu.Unlock()
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeReplaced {
		t.Fatalf("got close error %v, want code replaced", err)
	}
	if _, err := alice.SendText(ctxT(t), "bob", "x"); !errors.As(err, &e) || e.Code != wire.CodeReplaced {
		t.Fatalf("Send after kick: got %v, want code replaced", err)
	}
	testserver.WaitFor(t, "server side closed", func() bool {
		return srv.Node.Gateway().Conns() == 0 && len(srv.Proxy.Conns()) == 0
	})
	if srv.Logins() != 1 || rec.count(StateReconnecting) != 0 {
		t.Fatalf("client came back after a kick without reconnect")
	}
}

func TestOwnMessagesFromAnotherDevice(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	phone, prec := connect(t, srv, "alice", func(o *Options) { o.Device = "phone" })
	_, lrec := connect(t, srv, "alice", func(o *Options) { o.Device = "laptop"; o.Transport = "ws" })
	if _, err := phone.SendText(ctxT(t), "bob", "from phone"); err != nil {
		t.Fatal(err)
	}
	wantTexts(t, lrec, "1:from phone")
	lrec.mu.Lock()
	m := lrec.msgs[0]
	lrec.mu.Unlock()
	if !m.Own || m.Peer != "bob" || m.Sender != "alice" {
		t.Fatalf("got %+v, want own message to bob", m)
	}
	if got := prec.texts(); len(got) != 0 {
		t.Fatalf("the sending device got its own message: %v", got)
	}
}

func TestGiveUpErrorsAreTyped(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice")
	alice, _ := connect(t, srv, "alice")
	_, err := alice.SendText(ctxT(t), "nobody", "hi")
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeNotFound {
		t.Fatalf("got %v, want *Error not_found", err)
	}
	c := New(Options{Server: srv.URL, Username: "alice", Password: "wrong"})
	defer c.Close()
	if err := c.Connect(ctxT(t)); !errors.As(err, &e) || e.Code != wire.CodeInvalidCredential {
		t.Fatalf("Connect with a wrong password: got %v, want invalid_credentials", err)
	}
}

func TestBackoffJitterBounds(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: 2 * time.Second}
	tests := []struct {
		attempt int
		lo, hi  time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, time.Second, 2 * time.Second},
		{40, time.Second, 2 * time.Second},
		{1000, time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := b.delay(tt.attempt)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("attempt %d: got %v, want in [%v, %v]", tt.attempt, d, tt.lo, tt.hi)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("attempt %d: only %d distinct delays in 200; want jitter", tt.attempt, len(seen))
		}
	}
}

func TestMissingPongMeansADeadConnection(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, []testserver.Options{testserver.Heartbeat(time.Second)}, "alice")
	_, rec := connect(t, srv, "alice")
	srv.Proxy.Stall(true)
	testserver.WaitFor(t, "reconnecting", func() bool { return rec.count(StateReconnecting) == 1 })
	srv.Proxy.Stall(false)
	rec.mu.Lock()
	err := rec.errs[slices.Index(rec.states, StateReconnecting)]
	rec.mu.Unlock()
	if !errors.Is(err, errHeartbeat) {
		t.Fatalf("got %v, want the heartbeat error", err)
	}
	testserver.WaitFor(t, "ready again", func() bool { return rec.count(StateReady) == 2 })
}

func TestLoadedCursorsAndMissingRanges(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	conv := sendTexts(t, alice, "bob", "one", "two", "three")
	// A stored cursor: sync starts after it.
	c, rec := connect(t, srv, "bob", func(o *Options) { o.Cursors = memCursors{conv: 1} })
	wantTexts(t, rec, "2:two", "3:three")
	sendTexts(t, alice, "bob", "four")
	wantTexts(t, rec, "2:two", "3:three", "4:four")
	// An answer for "after 4" that starts at 6 means 5 does not exist for
	// us (before a member's history window): the cursor must not stall.
	c.skipMissing(conv, 4, 6)
	if got := c.Cursors()[conv]; got != 5 {
		t.Fatalf("cursor after skip %d, want 5", got)
	}
}

type memCursors map[string]uint64

func (m memCursors) Load() (map[string]uint64, error) { return m, nil }
func (m memCursors) Save(id string, seq uint64) error { return nil }

func TestGatewayNamesTheConnectionsGateway(t *testing.T) {
	srv := newServer(t, "alice")
	c := New(Options{Server: srv.URL, Username: "alice", Password: "pw-alice"})
	if g := c.Gateway(); g != "" {
		t.Fatalf("Gateway before Connect = %q, want empty", g)
	}
	if err := c.Connect(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if g := c.Gateway(); g == "" {
		t.Fatal("Gateway while connected is empty")
	}
	c.Close()
	if g := c.Gateway(); g != "" {
		t.Fatalf("Gateway after Close = %q, want empty", g)
	}
}
