package sqlstore

import (
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// hotStore opens a SQLite store and returns it with its file's path.
func hotStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "magpie.db")
	return mustOpen(t, path), path
}

// hits is how many batches the hot cache served.
func (h *hotCache) hitCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits
}

// appendOne appends one message from alice to bob and returns its result.
func appendOne(t *testing.T, s *Store, from, to store.User, cmid string) store.AppendResult {
	t.Helper()
	res, err := s.AppendMessages(t.Context(), []store.AppendRequest{{ConversationID: store.PrivateConversationID(from.ID, to.ID),
		SenderID: from.ID, PeerID: to.ID, ClientMsgID: cmid, Text: cmid}})
	if err != nil {
		t.Fatalf("append %s: %v", cmid, err)
	}
	return res[0]
}

// The cache serves a sender it knows, and cursor moves keep it valid.
func TestHotCacheServesAndSurvivesCursors(t *testing.T) {
	s, _ := hotStore(t)
	alice, bob, _ := createThree(t, s)
	appendOne(t, s, alice, bob, "m1") // fills the cache
	before := s.hc.hitCount()
	for i, cmid := range []string{"m2", "m3", "m4"} {
		r := appendOne(t, s, alice, bob, cmid)
		if r.Err != nil || r.Duplicate || r.Message.Seq != uint64(i+2) {
			t.Fatalf("%s: %+v", cmid, r)
		}
		if _, err := s.MoveCursor(t.Context(), bob.ID, r.Message.ConversationID, store.Delivered, r.Message.Seq); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.hc.hitCount() - before; got != 3 {
		t.Errorf("cache served %d of 3 batches after cursor moves", got)
	}
}

// A write of this process other than a send or a cursor move (a block)
// drops the cache: the next message sees it.
func TestHotCacheSeesOwnWrites(t *testing.T) {
	s, _ := hotStore(t)
	alice, bob, _ := createThree(t, s)
	appendOne(t, s, alice, bob, "m1")
	if err := s.Block(t.Context(), bob.ID, alice.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	before := s.hc.hitCount()
	if r := appendOne(t, s, alice, bob, "m2"); !errors.Is(r.Err, store.ErrBlocked) {
		t.Fatalf("after the block: %+v, want ErrBlocked", r)
	}
	if s.hc.hitCount() != before {
		t.Error("the cache served a batch after another write of this process")
	}
}

// Another process writing the file (here another connection) drops the
// cache: its messages, seqs and blocks are seen.
func TestHotCacheSeesOtherConnections(t *testing.T) {
	s, path := hotStore(t)
	alice, bob, carol := createThree(t, s)
	appendOne(t, s, alice, bob, "m1")
	appendOne(t, s, alice, carol, "c1")
	other, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ab := store.PrivateConversationID(alice.ID, bob.ID)
	for _, q := range []string{
		`UPDATE conversations SET last_seq = 2 WHERE id = '` + ab + `'`,
		`INSERT INTO messages(conversation_id, seq, sender_id, client_msg_id, text, sent_at) VALUES ('` + ab + `', 2, ` +
			itoa(alice.ID) + `, 'k', 'elsewhere', 1)`,
		`INSERT INTO blocks(user_id, blocked_id, created_at) VALUES (` + itoa(carol.ID) + `, ` + itoa(alice.ID) + `, 1)`,
	} {
		if _, err := other.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	before := s.hc.hitCount()
	if r := appendOne(t, s, alice, bob, "m3"); r.Err != nil || r.Message.Seq != 3 {
		t.Errorf("after another process's message: %+v, want seq 3", r)
	}
	if r := appendOne(t, s, alice, bob, "k"); !r.Duplicate || r.Message.Text != "elsewhere" {
		t.Errorf("retry of another process's message: %+v, want its original", r)
	}
	if r := appendOne(t, s, alice, carol, "c2"); !errors.Is(r.Err, store.ErrBlocked) {
		t.Errorf("after another process's block: %+v, want ErrBlocked", r)
	}
	// The first batch reads afresh and the cache then holds alice and bob
	// only: it serves the retry (which the insert then finds stored).
	if got := s.hc.hitCount() - before; got != 1 {
		t.Errorf("cache served %d of the 3 batches, want 1", got)
	}
}

// A retry of a message stored in an earlier batch gets its original, in a
// batch the cache served: found by the insert's unique key, or, when the
// sender may not send now (muted since), looked up before the refusal.
func TestHotCacheRetries(t *testing.T) {
	s, _ := hotStore(t)
	alice, bob, _ := createThree(t, s)
	first := appendOne(t, s, alice, bob, "m1")
	appendOne(t, s, alice, bob, "m2")
	before := s.hc.hitCount()
	if r := appendOne(t, s, alice, bob, "m1"); !r.Duplicate || r.Message.Seq != first.Message.Seq {
		t.Errorf("retry: %+v, want the original seq %d", r, first.Message.Seq)
	}
	if r := appendOne(t, s, alice, bob, "m3"); r.Err != nil || r.Message.Seq != 3 {
		t.Errorf("after the retry: %+v, want seq 3", r)
	}
	if s.hc.hitCount() == before {
		t.Error("the cache served none of the batches")
	}

	now := time.Now()
	g, _, err := s.CreateGroup(t.Context(), store.NewGroup{Name: "g", OwnerID: bob.ID, MemberIDs: []int64{alice.ID},
		Event: store.Event{Type: "created", ActorID: bob.ID}, At: now})
	if err != nil {
		t.Fatal(err)
	}
	send := func(cmid string) store.AppendResult {
		t.Helper()
		res, err := s.AppendMessages(t.Context(), []store.AppendRequest{{ConversationID: g.ID, SenderID: alice.ID, ClientMsgID: cmid, Text: cmid}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	sent := send("g1")
	if _, err := s.ChangeGroup(t.Context(), store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpMute, Targets: []int64{alice.ID},
		Until: now.Add(time.Hour), Event: store.Event{Type: "muted", ActorID: bob.ID}, At: now}); err != nil {
		t.Fatal(err)
	}
	if r := send("g2"); !errors.Is(r.Err, store.ErrMuted) { // reads afresh, and caches the mute
		t.Fatalf("muted: %+v, want ErrMuted", r)
	}
	before = s.hc.hitCount()
	if r := send("g1"); !r.Duplicate || r.Message.Seq != sent.Message.Seq {
		t.Errorf("retry while muted: %+v, want the original seq %d", r, sent.Message.Seq)
	}
	if r := send("g3"); !errors.Is(r.Err, store.ErrMuted) {
		t.Errorf("muted: %+v, want ErrMuted", r)
	}
	if got := s.hc.hitCount() - before; got != 2 {
		t.Errorf("cache served %d of the 2 batches while muted", got)
	}
}

func itoa(n int64) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int64) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}
