package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client/clienttest"
	"github.com/magpie-im/magpie/proto/magpiepb"
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

func newServer(t *testing.T, users ...string) *clienttest.Server {
	srv := clienttest.New(t)
	for _, u := range users {
		srv.AddUser(u, "pw-"+u)
	}
	return srv
}

func connect(t *testing.T, srv *clienttest.Server, user string, mod ...func(*Options)) (*Client, *recorder) {
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
	clienttest.WaitFor(t, fmt.Sprintf("messages %v", want), func() bool { return len(rec.texts()) >= len(want) })
	if got := rec.texts(); !slices.Equal(got, want) {
		t.Fatalf("got messages %v, want %v", got, want)
	}
}

func TestGapIsFilledFromHistory(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	alice, arec := connect(t, srv, "alice")
	bob, brec := connect(t, srv, "bob")
	srv.SetDropPush(func(to string, m *magpiepb.Message) bool { return to == "bob" && m.Seq == 2 })
	for _, text := range []string{"one", "two", "three"} {
		if _, err := alice.SendText(ctxT(t), "bob", text); err != nil {
			t.Fatal(err)
		}
	}
	wantTexts(t, brec, "1:one", "2:two", "3:three")
	// bob's delivered cursor reaches alice as a receipt.
	clienttest.WaitFor(t, "delivered receipt", func() bool {
		arec.mu.Lock()
		defer arec.mu.Unlock()
		for _, r := range arec.receipts {
			if r.Kind == Delivered && r.Seq == 3 && r.Username == "bob" {
				return true
			}
		}
		return false
	})
	if got := bob.Cursors(); got["p:alice:bob"] != 3 {
		t.Fatalf("bob's cursors %v, want p:alice:bob=3", got)
	}
	if got := arec.texts(); len(got) != 0 {
		t.Fatalf("alice got her own sends delivered: %v", got)
	}
}

func TestDuplicatesAreDropped(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	_, rec := connect(t, srv, "bob")
	m1 := srv.Store("alice", "bob", "one")
	m2 := srv.Store("alice", "bob", "two")
	for _, m := range []*magpiepb.Message{m1, m1, m2, m1, m2} {
		srv.Push("bob", m)
	}
	wantTexts(t, rec, "1:one", "2:two")
	// A reconnect syncs from the cursor and must not repeat anything.
	ready := rec.count(StateReady)
	srv.DropConnections()
	clienttest.WaitFor(t, "reconnect", func() bool { return rec.count(StateReady) > ready })
	srv.Push("bob", m2)
	m3 := srv.Store("alice", "bob", "three")
	srv.Push("bob", m3)
	wantTexts(t, rec, "1:one", "2:two", "3:three")
}

func TestOutOfOrderPushesAreReordered(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	_, rec := connect(t, srv, "bob")
	var ms []*magpiepb.Message
	for _, text := range []string{"one", "two", "three"} {
		ms = append(ms, srv.Store("alice", "bob", text))
	}
	srv.Push("bob", ms[2])
	srv.Push("bob", ms[1])
	srv.Push("bob", ms[0])
	wantTexts(t, rec, "1:one", "2:two", "3:three")
}

func TestSendIsRepeatedWithTheSameIDAfterADroppedConnection(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	srv.SetDropAck(func(id string, attempt int) bool { return attempt == 1 })
	ack, err := alice.Send(ctxT(t), SendRequest{ToUser: "bob", Text: "hi", ClientMsgID: "m-1"})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Seq != 1 || !ack.Duplicate || ack.ClientMsgID != "m-1" {
		t.Fatalf("got ack %+v, want seq 1, duplicate, id m-1", ack)
	}
	if n := srv.SendAttempts("m-1"); n != 2 {
		t.Fatalf("got %d send attempts, want 2", n)
	}
	if n := len(srv.Messages("alice", "bob")); n != 1 {
		t.Fatalf("got %d stored messages, want 1", n)
	}
}

func TestReloginWhenTheTokenIsRefused(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	alice, rec := connect(t, srv, "alice")
	if n := srv.Logins(); n != 1 {
		t.Fatalf("got %d logins, want 1", n)
	}
	srv.RevokeTokens()
	srv.DropConnections()
	clienttest.WaitFor(t, "second login and ready", func() bool {
		return srv.Logins() == 2 && rec.count(StateReady) == 2
	})
	if _, err := alice.SendText(ctxT(t), "bob", "still here"); err != nil {
		t.Fatal(err)
	}
}

func TestKickWithoutReconnectStops(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	alice, rec := connect(t, srv, "alice")
	srv.Kick("alice", wire.CodeReplaced)
	clienttest.WaitFor(t, "closed", func() bool { return rec.count(StateClosed) == 1 })
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
	// The fake server forgets a connection when its read loop ends, after
	// the client has already seen the kick.
	clienttest.WaitFor(t, "server side closed", func() bool { return srv.Online("alice") == 0 })
	if srv.Logins() != 1 || rec.count(StateReconnecting) != 0 {
		t.Fatalf("client came back after a kick without reconnect")
	}
}

func TestKickWithReconnectComesBack(t *testing.T) {
	srv := newServer(t, "alice")
	_, rec := connect(t, srv, "alice")
	srv.Kick("alice", wire.CodeDraining)
	clienttest.WaitFor(t, "ready again", func() bool { return rec.count(StateReady) == 2 })
}

func TestOwnMessagesFromAnotherDevice(t *testing.T) {
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
	srv := newServer(t, "alice")
	srv.SetHeartbeat(1)
	_, rec := connect(t, srv, "alice")
	srv.SetMute(true)
	clienttest.WaitFor(t, "reconnecting", func() bool { return rec.count(StateReconnecting) == 1 })
	srv.SetMute(false)
	rec.mu.Lock()
	err := rec.errs[slices.Index(rec.states, StateReconnecting)]
	rec.mu.Unlock()
	if !errors.Is(err, errHeartbeat) {
		t.Fatalf("got %v, want the heartbeat error", err)
	}
	clienttest.WaitFor(t, "ready again", func() bool { return rec.count(StateReady) == 2 })
}

func TestLoadedCursorsAndMissingRanges(t *testing.T) {
	srv := newServer(t, "alice", "bob")
	for _, text := range []string{"one", "two", "three"} {
		srv.Store("alice", "bob", text)
	}
	// A stored cursor: sync starts after it.
	c, rec := connect(t, srv, "bob", func(o *Options) { o.Cursors = memCursors{"p:alice:bob": 1} })
	wantTexts(t, rec, "2:two", "3:three")
	m := srv.Store("alice", "bob", "four")
	srv.Push("bob", m)
	wantTexts(t, rec, "2:two", "3:three", "4:four")
	// An answer for "after 4" that starts at 6 means 5 does not exist for
	// us (before a member's history window): the cursor must not stall.
	c.skipMissing("p:alice:bob", 4, 6)
	if got := c.Cursors()["p:alice:bob"]; got != 5 {
		t.Fatalf("cursor after skip %d, want 5", got)
	}
}

type memCursors map[string]uint64

func (m memCursors) Load() (map[string]uint64, error) { return m, nil }
func (m memCursors) Save(id string, seq uint64) error { return nil }
