package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// ftsIntact fails t unless the search index holds exactly the text and
// file messages with text that are not recalled, each once, by its
// current text: the trigrams FTS5 lists per row (fts5vocab) against the
// trigrams of the row's text. (FTS5's own integrity-check against the
// content table cannot tell: it expects every row of messages indexed.)
func ftsIntact(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.write.Exec(`CREATE VIRTUAL TABLE IF NOT EXISTS temp.fts_terms USING fts5vocab(main, messages_fts, instance)`); err != nil {
		t.Fatal(err)
	}
	got := map[int64][]string{}
	rows, err := s.write.Query(`SELECT doc, term FROM temp.fts_terms`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var doc int64
		var term string
		if err := rows.Scan(&doc, &term); err != nil {
			t.Fatal(err)
		}
		got[doc] = append(got[doc], term)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[int64][]string{}
	rows, err = s.write.Query(`SELECT rowid, lower(text) FROM messages WHERE kind IN (0, 1) AND text <> '' AND NOT recalled`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var doc int64
		var text string
		if err := rows.Scan(&doc, &text); err != nil {
			t.Fatal(err)
		}
		r := []rune(text)
		for i := 0; i+3 <= len(r); i++ {
			want[doc] = append(want[doc], string(r[i:i+3]))
		}
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[int64][]string{got, want} {
		for doc := range m {
			slices.Sort(m[doc])
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("search index holds\n%v\nwant\n%v", got, want)
	}
}

func searchSeqs(t *testing.T, s *Store, user int64, term string) []uint64 {
	t.Helper()
	got, err := s.Search(context.Background(), store.SearchQuery{UserID: user, Terms: []string{term}, Limit: 50})
	if err != nil {
		t.Fatalf("Search(%q): %v", term, err)
	}
	var seqs []uint64
	for _, m := range got {
		seqs = append(seqs, m.Seq)
	}
	return seqs
}

func searchPair(t *testing.T, s *Store) (a, b store.User, conv string) {
	t.Helper()
	ctx := context.Background()
	var err error
	if a, err = s.CreateUser(ctx, store.DefaultApp, "alice", "h"); err != nil {
		t.Fatal(err)
	}
	if b, err = s.CreateUser(ctx, store.DefaultApp, "bob", "h"); err != nil {
		t.Fatal(err)
	}
	return a, b, store.PrivateConversationID(a.ID, b.ID)
}

// TestSearchIndexInOneBatch: a batch that sends messages and edits or
// recalls them in the same batch leaves the index holding each message's
// final text once. The batch indexes its rows in one statement; the
// update trigger must find them indexed already.
func TestSearchIndexInOneBatch(t *testing.T) {
	s := openSQLiteTest(t)
	a, b, conv := searchPair(t, s)
	now := time.Now()
	req := func(kind store.MessageKind, ref uint64, cmid, text string) store.AppendRequest {
		return store.AppendRequest{ConversationID: conv, SenderID: a.ID, PeerID: b.ID, Kind: kind, RefSeq: ref,
			ClientMsgID: cmid, Text: text, SentAt: now, RecallWindow: time.Minute}
	}
	file := req(store.KindFile, 0, "f", "holiday photos")
	file.File = &store.FileRef{ID: "f1", Name: "beach.png", ContentType: "image/png", Size: 1}
	res, err := s.AppendMessages(context.Background(), []store.AppendRequest{
		req(store.KindText, 0, "m1", "lunch at noon"), // seq 1, edited by seq 4
		req(store.KindText, 0, "m2", "secret plans"),  // seq 2, recalled by seq 5
		file, // seq 3
		req(store.KindEdit, 1, "e1", "dinner tonight"),  // seq 4
		req(store.KindRecall, 2, "r1", ""),              // seq 5
		req(store.KindText, 0, "m3", "dinner was good"), // seq 6
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
	ftsIntact(t, s)
	for term, want := range map[string][]uint64{"lunch": nil, "secret": nil, "dinner": {1, 6}, "holiday": {3}} {
		got := searchSeqs(t, s, b.ID, term)
		if fmt.Sprint(sortedSeqs(got)) != fmt.Sprint(want) {
			t.Errorf("%q = %v, want %v", term, got, want)
		}
	}
}

func sortedSeqs(seqs []uint64) []uint64 {
	for i := range seqs {
		for j := i + 1; j < len(seqs); j++ {
			if seqs[j] < seqs[i] {
				seqs[i], seqs[j] = seqs[j], seqs[i]
			}
		}
	}
	return seqs
}

// TestMigrateSearchInTransaction: a database of migration 16, which
// indexed behind the appends up to a watermark, goes to version 19 in
// place: the rows past the watermark are indexed, the watermark and its
// conditional triggers are gone, an edit of such a row changes the index,
// and new messages are indexed once by their batch.
func TestMigrateSearchInTransaction(t *testing.T) {
	ctx := context.Background()
	s := openSQLiteTest(t)
	a, b, conv := searchPair(t, s)
	send := func(kind store.MessageKind, ref uint64, cmid, text string) {
		t.Helper()
		res, err := s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: conv, SenderID: a.ID, PeerID: b.ID,
			Kind: kind, RefSeq: ref, ClientMsgID: cmid, Text: text, SentAt: time.Now(), RecallWindow: time.Minute}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("append %s: %v, %+v", cmid, err, res)
		}
	}
	send(store.KindText, 0, "m1", "indexed before the watermark")
	// Back to version 17: migration 16's watermark and triggers, and a
	// message stored past it, not yet indexed.
	var stmts []string
	for _, m := range migrations {
		if m.version == 16 {
			stmts = m.sqlite
		}
	}
	stmts = append(stmts,
		`INSERT INTO messages(conversation_id, seq, sender_id, text, sent_at) VALUES ('`+conv+`', 2, `+
			fmt.Sprint(a.ID)+`, 'stored past the watermark', `+fmt.Sprint(time.Now().UnixMilli())+`)`,
		`UPDATE conversations SET last_seq = 2 WHERE id = '`+conv+`'`,
		`DROP INDEX scheduled_pending_due`, `ALTER TABLE scheduled_messages DROP COLUMN refused_at`, // version 20
		`ALTER TABLE scheduled_messages DROP COLUMN refused_code`, `ALTER TABLE scheduled_messages DROP COLUMN refused_reason`,
		`DELETE FROM schema_migrations WHERE version >= 19`)
	for _, q := range stmts {
		if _, err := s.write.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if got := searchSeqs(t, s, b.ID, "watermark"); fmt.Sprint(got) != "[1]" {
		t.Fatalf("before the migration: %v, want [1] (seq 2 past the watermark)", got)
	}
	if err := migrate(ctx, s.write, s.d); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var left int
	if err := s.read.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name IN ('messages_fts_upto', 'messages_fts_insert')`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("watermark or insert trigger left after the migration: %d (%v)", left, err)
	}
	ftsIntact(t, s)
	send(store.KindEdit, 2, "e2", "edited after the migration") // seq 3
	send(store.KindText, 0, "m4", "indexed by its batch")       // seq 4
	ftsIntact(t, s)
	for term, want := range map[string]string{"watermark": "[1]", "edited after": "[2]", "indexed": "[1 4]"} {
		if got := searchSeqs(t, s, b.ID, term); fmt.Sprint(sortedSeqs(got)) != want {
			t.Errorf("%q = %v, want %s", term, got, want)
		}
	}
}
