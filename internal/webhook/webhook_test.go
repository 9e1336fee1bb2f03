package webhook

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/logic"
)

var secret = []byte("webhook-secret-0123456789")

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHooks(t *testing.T, cfg Config) *Hooks {
	t.Helper()
	if cfg.Secret == nil {
		cfg.Secret = secret
	}
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	}
	h, err := New(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	return h
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// received is one request a test receiver saw.
type received struct {
	header http.Header
	body   []byte
}

type receiver struct {
	mu   sync.Mutex
	reqs []received
}

func (r *receiver) add(req *http.Request) received {
	b, _ := io.ReadAll(req.Body)
	rc := received{req.Header.Clone(), b}
	r.mu.Lock()
	r.reqs = append(r.reqs, rc)
	r.mu.Unlock()
	return rc
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reqs...)
}

func TestAfterSignsAndDelivers(t *testing.T) {
	var rcv receiver
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rcv.add(r) }))
	defer srv.Close()
	h := newHooks(t, Config{URLs: []string{srv.URL, srv.URL + "/second"}})
	at := time.Unix(1_800_000_000, 0).UTC()
	h.After(logic.Event{Type: "message.stored", At: at, Data: map[string]any{"seq": 7}})
	waitFor(t, "two deliveries", func() bool { return h.Stats().Delivered == 2 })
	for _, r := range rcv.all() {
		want := Signature(secret, r.body)
		if got := r.header.Get("X-Magpie-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
			t.Errorf("signature %q, want %q", got, want)
		}
		if got := r.header.Get("X-Magpie-Event"); got != "message.stored" {
			t.Errorf("X-Magpie-Event = %q", got)
		}
		if ts, err := strconv.ParseInt(r.header.Get("X-Magpie-Timestamp"), 10, 64); err != nil || time.Since(time.Unix(ts, 0)).Abs() > time.Minute {
			t.Errorf("X-Magpie-Timestamp = %q", r.header.Get("X-Magpie-Timestamp"))
		}
		var ev struct {
			ID   string
			Type string
			At   time.Time
			Data struct{ Seq int }
		}
		if err := json.Unmarshal(r.body, &ev); err != nil || ev.Type != "message.stored" || !ev.At.Equal(at) || ev.Data.Seq != 7 ||
			ev.ID == "" || ev.ID != r.header.Get("X-Magpie-Delivery") {
			t.Errorf("body %s (%v)", r.body, err)
		}
	}
	if s := h.Stats(); s != (Stats{Queued: 2, Delivered: 2}) {
		t.Fatalf("stats %+v", s)
	}
}

func TestAfterRetriesWithSameID(t *testing.T) {
	var rcv receiver
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(rcv.all()) < 2 {
			rcv.add(r)
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		rcv.add(r)
	}))
	defer srv.Close()
	h := newHooks(t, Config{URLs: []string{srv.URL}})
	h.After(logic.Event{Type: "group.created", At: time.Now()})
	waitFor(t, "delivery", func() bool { return h.Stats().Delivered == 1 })
	reqs := rcv.all()
	if len(reqs) != 3 {
		t.Fatalf("got %d attempts, want 3", len(reqs))
	}
	for _, r := range reqs[1:] {
		if r.header.Get("X-Magpie-Delivery") != reqs[0].header.Get("X-Magpie-Delivery") || string(r.body) != string(reqs[0].body) {
			t.Fatalf("a retry changed the event")
		}
	}
	if s := h.Stats(); s.Retries != 2 || s.Failed != 0 {
		t.Fatalf("stats %+v, want 2 retries, 0 failed", s)
	}
}

func TestAfterGivesUp(t *testing.T) {
	var rcv receiver
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rcv.add(r)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	h := newHooks(t, Config{URLs: []string{srv.URL}, MaxAttempts: 4})
	h.After(logic.Event{Type: "friend.accepted", At: time.Now()})
	waitFor(t, "giving up", func() bool { return h.Stats().Failed == 1 })
	if n := len(rcv.all()); n != 4 {
		t.Fatalf("got %d attempts, want 4", n)
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := 1; attempt < 80; attempt++ {
		d := backoff(100*time.Millisecond, 2*time.Second, attempt)
		ceiling := min(2*time.Second, 100*time.Millisecond<<min(attempt-1, 20))
		if d < 0 || d > ceiling {
			t.Fatalf("attempt %d: backoff %v outside [0, %v]", attempt, d, ceiling)
		}
	}
}

// A hook that never answers must not slow After: the queue fills, the
// rest is dropped and counted.
func TestSlowHookNeverBlocksAfter(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	h := newHooks(t, Config{URLs: []string{srv.URL}, QueueSize: 4, Workers: 1, AttemptTimeout: time.Minute})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 10000; i++ {
			h.After(logic.Event{Type: "message.stored", At: time.Now(), Data: i})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("After blocked behind a slow hook")
	}
	s := h.Stats()
	if s.Queued+s.Dropped != 10000 || s.Queued > 5 || s.Dropped < 9995 {
		t.Fatalf("stats %+v: want at most queue+worker queued, the rest dropped", s)
	}
	// Shutdown is bounded by its context even with a stuck receiver.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown = %v", err)
	}
	h.After(logic.Event{Type: "late"})
	if got := h.Stats().Dropped; got != s.Dropped+1 {
		t.Fatalf("an event after Shutdown: dropped %d, want %d", got, s.Dropped+1)
	}
}

func TestShutdownDrains(t *testing.T) {
	var rcv receiver
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { rcv.add(r) }))
	defer srv.Close()
	h := newHooks(t, Config{URLs: []string{srv.URL}, Workers: 1})
	for i := 0; i < 50; i++ {
		h.After(logic.Event{Type: "message.stored", Data: i})
	}
	if err := h.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(rcv.all()); n != 50 {
		t.Fatalf("delivered %d of 50 before Shutdown returned", n)
	}
}

func TestBeforeSend(t *testing.T) {
	msg := logic.OutgoingMessage{From: "alice", FromID: 1, ToUser: "bob", ConversationID: "p_1_2", ClientMsgID: "c1", Text: "buy now"}
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	hang := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	failed := &logic.Error{Kind: logic.KindUnavailable, Msg: "message policy check failed"}
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		failOpen bool
		want     *logic.Error // nil: allowed
	}{
		{"allow", answer(200, `{"allow":true}`), false, nil},
		{"veto with reason", answer(200, `{"allow":false,"reason":"no spam here"}`), true, &logic.Error{Kind: logic.KindForbidden, Msg: "no spam here"}},
		{"veto without reason", answer(200, `{"allow":false}`), true, &logic.Error{Kind: logic.KindForbidden, Msg: "message refused by policy"}},
		{"veto reason cleaned", answer(200, `{"allow":false,"reason":"bad\nword"}`), true, &logic.Error{Kind: logic.KindForbidden, Msg: "bad word"}},
		{"timeout, fail open", hang, true, nil},
		{"timeout, fail closed", hang, false, failed},
		{"status 500, fail open", answer(500, `{"allow":false}`), true, nil},
		{"status 500, fail closed", answer(500, `{"allow":true}`), false, failed},
		{"not JSON, fail closed", answer(200, `yes`), false, failed},
		{"no allow field, fail closed", answer(200, `{"reason":"?"}`), false, failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rcv receiver
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rcv.add(r)
				tt.handler(w, r)
			}))
			defer srv.Close()
			h := newHooks(t, Config{BeforeSendURL: srv.URL, BeforeSendTimeout: 50 * time.Millisecond, FailOpen: tt.failOpen})
			err := h.BeforeSend(context.Background(), msg)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want allowed", err)
				}
			} else if logic.Code(err) != logic.Code(tt.want) || logic.Message(err) != tt.want.Msg {
				t.Fatalf("got %v (code %v), want %q (code %v)", err, logic.Code(err), tt.want.Msg, logic.Code(tt.want))
			}
			if tt.want != nil && tt.want.Kind == logic.KindForbidden && !errors.Is(err, logic.ErrVetoed) {
				t.Fatalf("a veto must wrap logic.ErrVetoed: %v", err)
			}
			srv.Close() // waits for the handler
			reqs := rcv.all()
			if len(reqs) != 1 {
				t.Fatalf("hook called %d times, want 1", len(reqs))
			}
			got := reqs[0]
			var sent logic.OutgoingMessage
			if err := json.Unmarshal(got.body, &sent); err != nil || sent != msg {
				t.Fatalf("hook received %s", got.body)
			}
			if got.header.Get("X-Magpie-Signature") != Signature(secret, got.body) || got.header.Get("X-Magpie-Event") != "message.before_send" {
				t.Fatalf("headers %v", got.header)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{URLs: []string{"http://example.test/hook"}}, "webhook: --webhook-urls needs --webhook-secret (requests must be signed)"},
		{Config{URLs: []string{"ftp://example.test"}, Secret: secret}, `webhook: "ftp://example.test" is not an http(s) URL`},
		{Config{BeforeSendURL: "example.test/check"}, `webhook: "example.test/check" is not an http(s) URL`},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, testLog())
		if err == nil || err.Error() != tt.want {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

func BenchmarkAfter(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	h, err := New(Config{URLs: []string{srv.URL}, Secret: secret, QueueSize: 1 << 16}, testLog())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Shutdown(context.Background())
	ev := logic.Event{Type: "message.stored", At: time.Now(), Data: logic.StoredEvent{ConversationID: "p_1_2", Seq: 1, Text: "hello"}}
	b.ReportAllocs()
	for b.Loop() {
		h.After(ev)
	}
}
