package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/faultproxy"
	"github.com/magpie-im/magpie/internal/testserver"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

func TestTransientMessagesBypassCursorsAndGaps(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, []testserver.Options{func(c *config.Config) { c.AllowBroadcast = true }}, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	bob, rec := connect(t, srv, "bob")
	// bob's push of 2 is late, and so is the answer to the gap fill that
	// 3 starts: the stream stalls at 1.
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		if f.Dir == faultproxy.ToClient && f.Conn.User() == "bob" &&
			(f.Env.GetMessage().GetSeq() == 2 || f.Env.GetHistoryResult() != nil) {
			return faultproxy.Hold
		}
		return faultproxy.Pass
	})
	conv := sendTexts(t, alice, "bob", "one", "two", "three")
	testserver.WaitFor(t, "the gap fill held", func() bool {
		return srv.Proxy.Count(func(f *faultproxy.Frame) bool { return f.Env.GetHistoryResult() != nil }) == 1
	})
	wantDescribed(t, rec, "1:text:alice:one")
	// A transient message is delivered at once, stall or not.
	if _, err := alice.Send(ctxT(t), SendRequest{Broadcast: true, Text: "flash"}); err != nil {
		t.Fatal(err)
	}
	wantDescribed(t, rec, "1:text:alice:one", "0:text:alice:flash")
	if got := bob.Cursors()[conv]; got != 1 {
		t.Fatalf("cursor after a transient message %d, want 1", got)
	}
	rec.mu.Lock()
	tm := rec.msgs[1]
	rec.mu.Unlock()
	if !tm.Transient || tm.Seq != 0 {
		t.Fatalf("got %+v, want a transient message", tm)
	}
	// The stream resumes in order once the late frames arrive.
	srv.Proxy.SetRule(nil)
	if err := srv.Proxy.Release(nil, srv.Proxy.Held()...); err != nil {
		t.Fatal(err)
	}
	wantDescribed(t, rec, "1:text:alice:one", "0:text:alice:flash", "2:text:alice:two", "3:text:alice:three")
}

func TestBroadcastIsTransientAndNotEchoed(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t, []testserver.Options{func(c *config.Config) { c.Admins = []string{"alice"} }}, "alice", "bob")
	phone, prec := connect(t, srv, "alice", func(o *Options) { o.Device = "phone" })
	_, lrec := connect(t, srv, "alice", func(o *Options) { o.Device = "laptop" })
	_, brec := connect(t, srv, "bob")
	// The server sends a broadcast to the sender's connection too; hold
	// that echo until the ack is in, its latest possible moment.
	srv.Proxy.SetRule(func(f *faultproxy.Frame) faultproxy.Action {
		if f.Dir == faultproxy.ToClient && f.Conn.Device() == "phone" && f.Env.GetMessage().GetTransient() {
			return faultproxy.Hold
		}
		return faultproxy.Pass
	})
	ack, err := phone.Send(ctxT(t), SendRequest{Broadcast: true, Text: "hello all"})
	if err != nil {
		t.Fatal(err)
	}
	if ack.Seq != 0 {
		t.Fatalf("broadcast ack %+v, want seq 0", ack)
	}
	wantDescribed(t, brec, "0:text:alice:hello all")
	wantDescribed(t, lrec, "0:text:alice:hello all")
	var echo []*faultproxy.Frame
	testserver.WaitFor(t, "the echo", func() bool { echo = append(echo, srv.Proxy.Held()...); return len(echo) == 1 })
	srv.Proxy.SetRule(nil)
	if err := srv.Proxy.Release(nil, echo...); err != nil {
		t.Fatal(err)
	}
	// A request on the same connection answered, and the callbacks run:
	// the echo has been read and judged.
	if _, err := phone.Online(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := phone.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got := prec.described(); len(got) != 0 {
		t.Fatalf("the broadcasting device got its own broadcast: %v", got)
	}
	if _, err := phone.Send(ctxT(t), SendRequest{Broadcast: true, ToUser: "bob", Text: "x"}); err == nil {
		t.Fatal("broadcast with a recipient: got nil error")
	}
}

func TestRecallAndEditAreRetriedWithTheSameID(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, arec := connect(t, srv, "alice")
	_, brec := connect(t, srv, "bob")
	sent, err := alice.SendText(ctxT(t), "bob", "helo")
	if err != nil {
		t.Fatal(err)
	}
	// Every first attempt is stored but its ack is lost with the connection.
	attempts := cutOnFirstAck(srv)
	edit, err := alice.Edit(ctxT(t), sent.ConversationID, sent.Seq, "hello")
	if err != nil {
		t.Fatal(err)
	}
	recall, err := alice.Recall(ctxT(t), sent.ConversationID, sent.Seq)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []Ack{edit, recall} {
		if !a.Duplicate || attempts(a.ClientMsgID) != 2 {
			t.Fatalf("ack %+v after %d attempts, want a duplicate after 2", a, attempts(a.ClientMsgID))
		}
	}
	if edit.Seq != 2 || recall.Seq != 3 {
		t.Fatalf("edit #%d recall #%d, want #2 and #3", edit.Seq, recall.Seq)
	}
	wantDescribed(t, brec, "1:text:alice:helo", "2:edit:alice:hello:ref1", "3:recall:alice::ref1")
	if got := arec.described(); len(got) != 0 {
		t.Fatalf("alice got her own changes delivered: %v", got)
	}
	if got := alice.Cursors()[sent.ConversationID]; got != 3 {
		t.Fatalf("alice's cursor %d, want 3", got)
	}
	hist, err := alice.History(ctxT(t), sent.ConversationID, HistoryQuery{})
	if err != nil || len(hist) != 3 || !hist[0].Recalled || hist[0].EditedAt.IsZero() {
		t.Fatalf("History: got %+v, %v; want 3 stored, the original recalled and edited", hist, err)
	}
	var e *Error
	if _, err := alice.Recall(ctxT(t), sent.ConversationID, 99); !errors.As(err, &e) || e.Code != wire.CodeNotFound {
		t.Fatalf("recalling a missing message: got %v, want not_found", err)
	}
}

func TestFilesUploadSendAndDownload(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob", "carol")
	alice, _ := connect(t, srv, "alice")
	bob, brec := connect(t, srv, "bob")
	carol, _ := connect(t, srv, "carol")
	ctx := ctxT(t)

	path := filepath.Join(t.TempDir(), "pic.png")
	// A PNG header: the server checks the declared type against the content.
	data := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte("magpie"), 5000)...)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ref, err := alice.UploadFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if ref.ID == "" || ref.Name != "pic.png" || ref.ContentType != "image/png" || ref.Size != int64(len(data)) {
		t.Fatalf("UploadFile: got %+v", ref)
	}
	ref2, err := alice.UploadReader(ctx, bytes.NewReader([]byte("notes")), `a "quoted" name.txt`, "text/plain")
	// The server keeps the name (quotes made safe): the SDK escaped it.
	if err != nil || ref2.Name != `a _quoted_ name.txt` || ref2.Size != 5 {
		t.Fatalf("UploadReader: got %+v, %v", ref2, err)
	}

	if _, err := alice.Send(ctx, SendRequest{ToUser: "bob", FileID: ref.ID}); err != nil {
		t.Fatal(err)
	}
	wantDescribed(t, brec, "1:file:alice:")
	brec.mu.Lock()
	got := brec.msgs[0].File
	brec.mu.Unlock()
	if got == nil || *got != ref {
		t.Fatalf("bob's file message carries %+v, want %+v", got, ref)
	}
	var buf bytes.Buffer
	dl, err := bob.DownloadFile(ctx, ref.ID, &buf)
	if err != nil || !bytes.Equal(buf.Bytes(), data) || dl.Name != "pic.png" || dl.ContentType != "image/png" {
		t.Fatalf("DownloadFile: got %+v, %d bytes, %v", dl, buf.Len(), err)
	}
	var e *Error
	buf.Reset()
	if _, err := carol.DownloadFile(ctx, ref.ID, &buf); !errors.As(err, &e) || e.Code != wire.CodeNotFound || buf.Len() != 0 {
		t.Fatalf("a stranger's download: got %v and %d bytes, want not_found and none", err, buf.Len())
	}
	if _, err := bob.Send(ctx, SendRequest{ToUser: "alice", FileID: ref.ID}); !errors.As(err, &e) || e.Code != wire.CodeForbidden {
		t.Fatalf("sending someone else's file: got %v, want forbidden", err)
	}
}

func TestFriendsAndBlocks(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	bob, _ := connect(t, srv, "bob")
	ctx := ctxT(t)
	if st, err := alice.RequestFriend(ctx, "bob"); err != nil || st != FriendRequested {
		t.Fatalf("RequestFriend: got %q, %v", st, err)
	}
	fl, err := bob.Friends(ctx)
	if err != nil || len(fl.Incoming) != 1 || fl.Incoming[0].Username != "alice" {
		t.Fatalf("bob's friends: got %+v, %v", fl, err)
	}
	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if fl, err = alice.Friends(ctx); err != nil || len(fl.Friends) != 1 || fl.Friends[0].Username != "bob" || len(fl.Outgoing) != 0 {
		t.Fatalf("alice's friends: got %+v, %v", fl, err)
	}
	if err := bob.Block(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if _, err := alice.SendText(ctx, "bob", "hi"); !errors.As(err, &e) || e.Code != wire.CodeBlocked {
		t.Fatalf("send to a blocker: got %v, want blocked", err)
	}
	if err := bob.Unblock(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendText(ctx, "bob", "hi"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RemoveFriend(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := bob.DeclineFriend(ctx, "alice"); !errors.As(err, &e) || e.Code != wire.CodeNotFound {
		t.Fatalf("declining no request: got %v, want not_found", err)
	}
}

func TestConversationFlagsReachOtherDevices(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	var mu sync.Mutex
	var states []ConversationState
	phone, _ := connect(t, srv, "alice", func(o *Options) { o.Device = "phone" })
	connect(t, srv, "alice", func(o *Options) {
		o.Device = "laptop"
		o.OnConversation = func(cs ConversationState) { mu.Lock(); states = append(states, cs); mu.Unlock() }
	})
	ack, err := phone.SendText(ctxT(t), "bob", "hi")
	if err != nil {
		t.Fatal(err)
	}
	pinned := true
	cv, err := phone.SetConversationFlags(ctxT(t), ack.ConversationID, &pinned, nil)
	if err != nil || !cv.Pinned || cv.Muted || cv.Peer != "bob" || cv.LastMessage == nil || cv.LastMessage.Text != "hi" {
		t.Fatalf("SetConversationFlags: got %+v, %v", cv, err)
	}
	testserver.WaitFor(t, "conversation push", func() bool { mu.Lock(); defer mu.Unlock(); return len(states) > 0 })
	mu.Lock()
	defer mu.Unlock()
	if st := states[0]; st.ID != ack.ConversationID || !st.Pinned || st.Muted || st.Kind != "private" {
		t.Fatalf("pushed state %+v, want %s pinned", st, ack.ConversationID)
	}
}

func TestMessageKindJSON(t *testing.T) {
	tests := []struct {
		in   string
		want MessageKind
	}{
		{`1`, KindFile}, {`"recall"`, KindRecall}, {`"MESSAGE_KIND_EDIT"`, KindEdit},
		{`"event"`, KindEvent}, {`5`, KindNotification}, {`"something new"`, KindText},
	}
	for _, tt := range tests {
		var k MessageKind
		if err := json.Unmarshal([]byte(tt.in), &k); err != nil || k != tt.want {
			t.Errorf("unmarshal %s: got %v, %v; want %v", tt.in, k, err, tt.want)
		}
	}
	if got := slices.Collect(func(yield func(string) bool) {
		for k := KindText; k <= KindNotification+1; k++ {
			yield(k.String())
		}
	}); !slices.Equal(got, []string{"text", "file", "recall", "edit", "event", "notification", "kind(6)"}) {
		t.Errorf("kind names %v", got)
	}
}

func TestFlushWaitsForCallbacks(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	release := make(chan struct{})
	var mu sync.Mutex
	var got []string
	bob, _ := connect(t, srv, "bob", func(o *Options) {
		o.OnMessage = func(m Message) {
			<-release
			mu.Lock()
			got = append(got, m.Text)
			mu.Unlock()
		}
	})
	alice, _ := connect(t, srv, "alice")
	conv := sendTexts(t, alice, "bob", "one")
	testserver.WaitFor(t, "cursor", func() bool { return bob.Cursors()[conv] == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := bob.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flush with a callback blocked: got %v, want deadline exceeded", err)
	}
	close(release)
	if err := bob.Flush(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"one"}) {
		t.Fatalf("after Flush got %v, want [one]", got)
	}
	bob.Close()
	if err := bob.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush after Close: %v", err)
	}
}

// Receipts that arrive out of order never move a cursor back for the app.
func TestStaleReceiptsDropped(t *testing.T) {
	c := New(Options{Server: "http://127.0.0.1:1", Username: "u", Password: "p"})
	var got []uint64
	var mu sync.Mutex
	c.opts.OnReceipt = func(r Receipt) { mu.Lock(); got = append(got, r.Seq); mu.Unlock() }
	c.events.start() // Connect starts the callback goroutine; no server here
	for _, seq := range []uint64{3, 5, 4, 5, 6} {
		c.receiptPushed(&magpiepb.Receipt{ConversationId: "p_1_2", Kind: magpiepb.ReceiptKind_RECEIPT_KIND_READ, Seq: seq, UserId: 2})
	}
	c.receiptPushed(&magpiepb.Receipt{ConversationId: "p_1_2", Kind: magpiepb.ReceiptKind_RECEIPT_KIND_DELIVERED, Seq: 4, UserId: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[3 5 6 4]" {
		t.Fatalf("receipts shown: %v, want [3 5 6 4]", got)
	}
	_ = c.Close()
}

func TestHideAndClearConversation(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	bob, _ := connect(t, srv, "bob")
	conv := sendTexts(t, bob, "alice", "one", "two")
	listed := func(c *Client) *Conversation {
		cs, err := c.Conversations(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for i := range cs {
			if cs[i].ID == conv {
				return &cs[i]
			}
		}
		return nil
	}
	if seq, err := alice.HideConversation(ctxT(t), conv, false); err != nil || seq != 2 {
		t.Fatalf("HideConversation = %d, %v; want 2", seq, err)
	}
	if listed(alice) != nil || listed(bob) == nil {
		t.Fatal("hidden: want it out of alice's list only")
	}
	if seq, err := alice.HideConversation(ctxT(t), conv, true); err != nil || seq != 2 {
		t.Fatalf("HideConversation(clear) = %d, %v; want 2", seq, err)
	}
	sendTexts(t, bob, "alice", "three")
	cv := listed(alice)
	if cv == nil || cv.ClearedSeq != 2 || cv.Unread != 1 || cv.LastMessage == nil || cv.LastMessage.Text != "three" {
		t.Fatalf("after a new message alice lists %+v; want it back, cleared at 2, 1 unread", cv)
	}
	// The long connection's history starts after the clear for alice only.
	msgs, err := alice.History(ctxT(t), conv, HistoryQuery{})
	if err != nil || len(msgs) != 1 || msgs[0].Text != "three" {
		t.Fatalf("alice's history after the clear: %+v, %v; want only three", msgs, err)
	}
	if msgs, err := bob.History(ctxT(t), conv, HistoryQuery{}); err != nil || len(msgs) != 3 {
		t.Fatalf("bob's history: %d messages, %v; want 3", len(msgs), err)
	}
	// A new device of alice's syncs only what came after the clear.
	_, rec := connect(t, srv, "alice", func(o *Options) { o.Device = "tablet" })
	wantTexts(t, rec, "3:three")
	var e *Error
	if _, err := alice.HideConversation(ctxT(t), "p_99_98", false); !errors.As(err, &e) || e.Code != wire.CodeNotMember {
		t.Fatalf("hiding someone else's conversation: %v, want not_member", err)
	}
}

func TestTypingReachesTheOtherMembersOnly(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob", "carol")
	var mu sync.Mutex
	got := map[string][]Typing{}
	onTyping := func(who string) func(*Options) {
		return func(o *Options) {
			o.Device = who
			o.OnTyping = func(ty Typing) { mu.Lock(); got[who] = append(got[who], ty); mu.Unlock() }
		}
	}
	alice, _ := connect(t, srv, "alice", onTyping("alice-phone"))
	connect(t, srv, "alice", onTyping("alice-laptop"))
	bob, _ := connect(t, srv, "bob", onTyping("bob"))
	carol, _ := connect(t, srv, "carol", onTyping("carol"))
	conv := sendTexts(t, alice, "bob", "hi")

	if err := alice.Typing(ctxT(t), conv, false); err != nil {
		t.Fatal(err)
	}
	if err := alice.Typing(ctxT(t), conv, true); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, "bob sees alice typing", func() bool { mu.Lock(); defer mu.Unlock(); return len(got["bob"]) == 2 })
	var e *Error
	if err := carol.Typing(ctxT(t), conv, false); !errors.As(err, &e) || e.Code != wire.CodeNotMember {
		t.Fatalf("carol typing in alice and bob's chat: %v, want not_member", err)
	}
	if err := bob.Typing(ctxT(t), "bad id", false); !errors.As(err, &e) || e.Code != wire.CodeBadRequest {
		t.Fatalf("typing with a bad id: %v, want bad_request", err)
	}
	// The next message after the notices: nothing else arrived meanwhile.
	sendTexts(t, bob, "alice", "hello")
	testserver.WaitFor(t, "bob's reply", func() bool { return true })
	mu.Lock()
	want := []Typing{{ConversationID: conv, UserID: alice.UserID(), Username: "alice"}, {ConversationID: conv, UserID: alice.UserID(), Username: "alice", Stopped: true}}
	if !slices.Equal(got["bob"], want) || len(got["carol"]) != 0 || len(got["alice-laptop"]) != 0 || len(got["alice-phone"]) != 0 {
		t.Errorf("typing notices %v; want bob %v and nobody else", got, want)
	}
	mu.Unlock()

	// A flood is refused: 2 a second, a burst of 6.
	var refused *Error
	for i := 0; i < 20 && refused == nil; i++ {
		if err := bob.Typing(ctxT(t), conv, false); err != nil && !errors.As(err, &refused) {
			t.Fatal(err)
		}
	}
	if refused == nil || refused.Code != wire.CodeRateLimited || refused.RetryAfter <= 0 {
		t.Fatalf("20 typing notices at once: %v, want rate_limited with a retry time", refused)
	}
}

func TestScheduledMessagesAreSentLater(t *testing.T) {
	t.Parallel()
	srv := newServer(t, "alice", "bob")
	alice, _ := connect(t, srv, "alice")
	_, rec := connect(t, srv, "bob")
	at := time.Now().Add(1500 * time.Millisecond)
	ack, err := alice.Send(ctxT(t), SendRequest{ToUser: "bob", Text: "later", SendAt: at})
	if err != nil || ack.ScheduledID == 0 || ack.Seq != 0 || ack.SendAt.UnixMilli() != at.UnixMilli() || ack.ClientMsgID == "" {
		t.Fatalf("scheduled send: %+v, %v", ack, err)
	}
	far, err := alice.Send(ctxT(t), SendRequest{ToUser: "bob", Text: "never", SendAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	list, err := alice.ScheduledMessages(ctxT(t))
	if err != nil || len(list) != 2 || list[0].ID != ack.ScheduledID || list[0].Text != "later" || list[0].ToUser != "bob" || list[0].SendAt.UnixMilli() != at.UnixMilli() {
		t.Fatalf("ScheduledMessages: %+v, %v", list, err)
	}
	if err := alice.CancelScheduled(ctxT(t), far.ScheduledID); err != nil {
		t.Fatal(err)
	}
	var e *Error
	if err := alice.CancelScheduled(ctxT(t), far.ScheduledID); !errors.As(err, &e) || e.Code != wire.CodeNotFound {
		t.Fatalf("cancelling twice: %v, want not_found", err)
	}
	if _, err := alice.Send(ctxT(t), SendRequest{ToUser: "bob", Text: "x", SendAt: time.Now().Add(-time.Minute)}); !errors.As(err, &e) || e.Code != wire.CodeBadRequest {
		t.Fatalf("scheduling in the past: %v, want bad_request", err)
	}
	// bob gets it when it is due, as an ordinary message with seq 1.
	wantDescribed(t, rec, "1:text:alice:later")
	testserver.WaitFor(t, "the sent message dropped from the list", func() bool {
		list, err := alice.ScheduledMessages(ctxT(t))
		return err == nil && len(list) == 0
	})
}
