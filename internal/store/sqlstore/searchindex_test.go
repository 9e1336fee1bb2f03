package sqlstore

import (
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// indexedUpTo is the search index's watermark and the highest rowid of
// messages.
func indexedUpTo(t *testing.T, s *Store) (upto, last int64) {
	t.Helper()
	if err := s.read.QueryRowContext(t.Context(), `SELECT (SELECT upto FROM messages_fts_upto),
		(SELECT COALESCE(MAX(rowid), 0) FROM messages)`).Scan(&upto, &last); err != nil {
		t.Fatal(err)
	}
	return upto, last
}

func searchSeqs(t *testing.T, s *Store, user store.User, term string) []uint64 {
	t.Helper()
	msgs, err := s.Search(t.Context(), store.SearchQuery{UserID: user.ID, Terms: []string{term}, Limit: 10})
	if err != nil {
		t.Fatalf("Search(%q): %v", term, err)
	}
	var seqs []uint64
	for _, m := range msgs {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

// On SQLite the append transaction leaves the search index alone; a search
// catches it up first, and edits and recalls of rows indexed or not yet
// indexed come out right.
func TestSearchIndexBehindAppends(t *testing.T) {
	s, _ := hotStore(t)
	s.stopSearchIndexer() // only the searches index here
	alice, bob, _ := createThree(t, s)
	conv := store.PrivateConversationID(alice.ID, bob.ID)
	change := func(kind store.MessageKind, ref uint64, cmid, text string) {
		t.Helper()
		res, err := s.AppendMessages(t.Context(), []store.AppendRequest{{ConversationID: conv, SenderID: alice.ID,
			Kind: kind, RefSeq: ref, ClientMsgID: cmid, Text: text, SentAt: time.Now(), RecallWindow: time.Minute}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("%s: %v %+v", cmid, err, res)
		}
	}
	appendOne(t, s, alice, bob, "alpha-1") // seq 1
	appendOne(t, s, alice, bob, "bravo-2") // seq 2
	if upto, last := indexedUpTo(t, s); upto >= last {
		t.Fatalf("index at %d of %d right after the appends: the append transaction indexed", upto, last)
	}
	if got := searchSeqs(t, s, bob, "alpha"); len(got) != 1 || got[0] != 1 {
		t.Fatalf("alpha = %v, want seq 1", got)
	}
	if upto, last := indexedUpTo(t, s); upto != last {
		t.Fatalf("index at %d of %d after a search", upto, last)
	}

	appendOne(t, s, alice, bob, "charlie-3") // seq 3, not indexed yet
	change(store.KindEdit, 3, "e3", "delta") // edited before its turn
	change(store.KindEdit, 1, "e1", "echo")  // edited after
	appendOne(t, s, alice, bob, "foxtrot-6") // seq 6
	change(store.KindRecall, 6, "r6", "")    // recalled before its turn
	change(store.KindRecall, 2, "r2", "")    // recalled after
	for term, want := range map[string][]uint64{
		"alpha": nil, "echo": {1}, "bravo": nil, "charlie": nil, "delta": {3}, "foxtrot": nil,
	} {
		got := searchSeqs(t, s, bob, term)
		if len(got) != len(want) || (len(want) == 1 && got[0] != want[0]) {
			t.Errorf("%s = %v, want %v", term, got, want)
		}
	}
	// Deleting the top rows (the store does not, but the index must
	// survive it): SQLite hands their rowids out again, and the new row
	// they go to is indexed like any other.
	if _, err := s.write.ExecContext(t.Context(), `DELETE FROM messages WHERE conversation_id = $1 AND seq >= 5`, conv); err != nil {
		t.Fatal(err)
	}
	appendOne(t, s, alice, bob, "golf-reused")
	if got := searchSeqs(t, s, bob, "golf"); len(got) != 1 {
		t.Errorf("golf (a reused rowid) = %v, want one hit", got)
	}
	// The index's integrity: FTS5 checks its entries against the rows.
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')`); err != nil {
		t.Errorf("integrity-check: %v", err)
	}
}

// The indexer's transactions leave the hot cache valid, like cursor moves.
func TestSearchIndexKeepsHotCache(t *testing.T) {
	s, _ := hotStore(t)
	s.stopSearchIndexer()
	alice, bob, _ := createThree(t, s)
	appendOne(t, s, alice, bob, "m1") // fills the cache
	before := s.hc.hitCount()
	for _, cmid := range []string{"m2", "m3"} {
		appendOne(t, s, alice, bob, cmid)
		if n, err := s.catchUpSearch(t.Context()); err != nil || n == 0 {
			t.Fatalf("catch-up after %s: %d rows, %v", cmid, n, err)
		}
	}
	appendOne(t, s, alice, bob, "m4")
	if got := s.hc.hitCount() - before; got != 3 {
		t.Errorf("cache served %d of 3 batches after index catch-ups", got)
	}
}

// The loop indexes on its own, without a search.
func TestSearchIndexLoop(t *testing.T) {
	s, _ := hotStore(t)
	alice, bob, _ := createThree(t, s)
	appendOne(t, s, alice, bob, "m1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		upto, last := indexedUpTo(t, s)
		if upto == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("index at %d of %d after 10 s", upto, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
