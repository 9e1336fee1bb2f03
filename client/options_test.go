package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/testserver"
	"github.com/magpie-im/magpie/proto/wire"
)

// TestNoReconnectStops: with NoReconnect a cut connection stops the Client
// instead of bringing it back; a later Connect works.
func TestNoReconnectStops(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, rec := connect(t, srv, "alice", func(o *Options) { o.NoReconnect = true })
	srv.Proxy.CutAll()
	testserver.WaitFor(t, "StateClosed", func() bool { return alice.State() == StateClosed })
	if n := rec.count(StateReconnecting); n != 0 {
		t.Fatalf("got %d reconnecting states, want none", n)
	}
	if _, err := alice.SendText(ctxT(t), "bob", "hi"); err == nil {
		t.Fatal("Send after the stop succeeded")
	}
	if err := alice.Connect(ctxT(t)); err != nil {
		t.Fatalf("Connect again: %v", err)
	}
	if _, err := alice.SendText(ctxT(t), "bob", "hi"); err != nil {
		t.Fatal(err)
	}
}

// TestPluggableBackoff: Options.Backoff gives the reconnect delays.
func TestPluggableBackoff(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice")
	var asked atomic.Int32
	alice, _ := connect(t, srv, "alice", func(o *Options) {
		o.Backoff = func(attempt int) time.Duration { asked.Add(1); return time.Millisecond }
	})
	srv.Proxy.CutAll()
	testserver.WaitFor(t, "a reconnect through the Backoff", func() bool { return asked.Load() > 0 && alice.State() == StateReady })
	if d := JitteredBackoff(100*time.Millisecond, time.Second)(0); d < 50*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("JitteredBackoff(100ms, 1s)(0) = %v, want within [50ms, 100ms]", d)
	}
}

// TestSendMany stores many messages in one call, in order per
// conversation, and names the ones that failed.
func TestSendMany(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob", "carol")
	alice, _ := connect(t, srv, "alice")
	var reqs []SendRequest
	for i := range 30 {
		to := []string{"bob", "carol"}[i%2]
		reqs = append(reqs, SendRequest{ToUser: to, Text: to + string(rune('a'+i/2))})
	}
	acks, err := alice.SendMany(ctxT(t), reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range acks {
		if want := uint64(i/2 + 1); a.Seq != want {
			t.Fatalf("ack %d: seq %d, want %d (in order per conversation)", i, a.Seq, want)
		}
	}
	hist, err := alice.History(ctxT(t), acks[0].ConversationID, HistoryQuery{Limit: 100})
	if err != nil || len(hist) != 15 || hist[0].Text != "boba" || hist[14].Text != "bobo" {
		t.Fatalf("bob's conversation: %d messages, %v", len(hist), err)
	}
	acks, err = alice.SendMany(ctxT(t), []SendRequest{{ToUser: "bob", Text: "ok"}, {ToUser: "nobody", Text: "x"}, {ToUser: "nobody", Text: "y"}})
	var be *BatchError
	if !errors.As(err, &be) || be.Errs[0] != nil || be.Errs[1] == nil || be.Errs[2] == nil || acks[0].Seq != 16 {
		t.Fatalf("got %v, %+v; want message 0 stored, 1 and 2 failed", err, acks)
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != wire.CodeNotFound {
		t.Errorf("the batch error does not unwrap to not_found: %v", err)
	}
}

// TestFileCursorsResume: a new process with the same cursor file does not
// see the messages the last one was given.
func TestFileCursorsResume(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	path := filepath.Join(t.TempDir(), "bob.cursors.json")
	alice, _ := connect(t, srv, "alice")
	sendTexts(t, alice, "bob", "one", "two")

	store := NewFileCursors(path)
	bob, rec := connect(t, srv, "bob", func(o *Options) { o.Device = "d"; o.Cursors = store })
	wantTexts(t, rec, "1:one", "2:two")
	testserver.WaitFor(t, "the cursor saved", func() bool { return bob.Cursors()["p_1_2"] == 2 })
	bob.Close()
	if err := store.Flush(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != `{"p_1_2":2}` {
		t.Fatalf("the file: %q, %v", b, err)
	}
	sendTexts(t, alice, "bob", "three")
	_, rec = connect(t, srv, "bob", func(o *Options) { o.Device = "d"; o.Cursors = NewFileCursors(path) })
	wantTexts(t, rec, "3:three")

	// Without the file: everything again.
	_, rec = connect(t, srv, "bob", func(o *Options) { o.Device = "d2" })
	wantTexts(t, rec, "1:one", "2:two", "3:three")
}

func TestFileCursorsWritesAtMostEveryInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	f := &FileCursors{Path: path, Interval: time.Hour}
	if cur, err := f.Load(); err != nil || len(cur) != 0 {
		t.Fatalf("Load of a missing file: %v, %v", cur, err)
	}
	for seq := range uint64(5) {
		if err := f.Save("p_1_2", seq+1); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	if string(b) != `{"p_1_2":1}` { // the first at once, the rest wait for the interval
		t.Fatalf("before Flush: %q", b)
	}
	if err := f.Flush(); err != nil {
		t.Fatal(err)
	}
	cur, err := NewFileCursors(path).Load()
	if err != nil || cur["p_1_2"] != 5 {
		t.Fatalf("after Flush: %v, %v", cur, err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFileCursors(path).Load(); err == nil {
		t.Error("a broken file loads without an error")
	}
	left, _ := filepath.Glob(path + ".tmp-*")
	if len(left) > 0 || !slices.Equal(left, nil) {
		t.Errorf("temporary files left: %v", left)
	}
	_ = context.Background
}

func TestReplyToAndLookupUser(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	first, err := alice.SendText(ctxT(t), "bob", "lunch?")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctxT(t), SendRequest{ToUser: "bob", Text: "at noon", ReplyTo: first.Seq}); err != nil {
		t.Fatal(err)
	}
	hist, err := alice.History(ctxT(t), first.ConversationID, HistoryQuery{})
	if err != nil || len(hist) != 2 || hist[1].RefSeq != first.Seq {
		t.Fatalf("history: %+v, %v; want the second answering the first", hist, err)
	}
	if _, err := alice.Send(ctxT(t), SendRequest{Broadcast: true, Text: "x", ReplyTo: 1}); err == nil {
		t.Error("a broadcast reply was accepted")
	}
	u, err := alice.LookupUser(ctxT(t), "BOB")
	if err != nil || u.Username != "bob" || u.ID != 2 {
		t.Errorf("LookupUser(BOB) = %+v, %v", u, err)
	}
	var e *Error
	if _, err := alice.LookupUser(ctxT(t), "nobody"); !errors.As(err, &e) || e.Code != wire.CodeNotFound {
		t.Errorf("LookupUser(nobody): %v, want not_found", err)
	}
	if alice.Gateway() == "" || alice.GatewayAddr() == "" {
		t.Errorf("Gateway() = %q, GatewayAddr() = %q while connected", alice.Gateway(), alice.GatewayAddr())
	}
}
