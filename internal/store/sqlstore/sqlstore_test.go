package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/magpie-im/magpie/internal/pgtest"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/internal/store/storetest"
)

// postgresEnv names the variable holding a PostgreSQL DSN for the tests,
// e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const postgresEnv = pgtest.Env

// backend opens a fresh, empty store that is closed (and, for PostgreSQL,
// dropped) when the test ends.
type backend struct {
	name string
	open func(tb testing.TB) *Store
}

func backends(tb testing.TB) []backend {
	bs := []backend{{"sqlite", openSQLiteTest}}
	if os.Getenv(postgresEnv) != "" {
		bs = append(bs, backend{"postgres", openPostgresTest})
	}
	return bs
}

func openSQLiteTest(tb testing.TB) *Store {
	tb.Helper()
	return mustOpen(tb, filepath.Join(tb.TempDir(), "data", "magpie.db"))
}

func mustOpen(tb testing.TB, dsn string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), dsn)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// openPostgresTest gives each test its own schema, so tests and test
// packages running in parallel against one database never meet.
func openPostgresTest(tb testing.TB) *Store {
	tb.Helper()
	s, _ := openPostgresTestDSN(tb)
	return s
}

// openPostgresTestDSN is openPostgresTest that also returns the DSN of
// the test's schema, to open it again as a second node.
func openPostgresTestDSN(tb testing.TB) (*Store, string) {
	tb.Helper()
	dsn := pgtest.Schema(tb, "magpie_test")
	return mustOpen(tb, dsn), dsn
}

func asStore(open func(testing.TB) *Store) func(*testing.T) store.Store {
	return func(t *testing.T) store.Store { return open(t) }
}

func TestSQLite(t *testing.T) {
	storetest.Run(t, asStore(openSQLiteTest))
}

func TestPostgres(t *testing.T) {
	if os.Getenv(postgresEnv) == "" {
		t.Skipf("!!! %s is unset: PostgreSQL tests SKIPPED.", postgresEnv)
	}
	storetest.Run(t, asStore(openPostgresTest))
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "magpie.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	alice, _ := s.CreateUser(ctx, store.DefaultApp, "alice", "h")
	bob, _ := s.CreateUser(ctx, store.DefaultApp, "bob", "h")
	conv := store.PrivateConversationID(alice.ID, bob.ID)
	req := store.AppendRequest{ConversationID: conv, SenderID: alice.ID, PeerID: bob.ID, ClientMsgID: "c1", Text: "before"}
	if _, err := s.AppendMessages(ctx, []store.AppendRequest{req}); err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for round := range 2 { // reopening twice must not re-run migrations
		s = mustOpen(t, path)
		u, err := s.UserByName(ctx, store.DefaultApp, "ALICE")
		if err != nil || u.ID != alice.ID {
			t.Fatalf("round %d: UserByName after reopen = %+v, %v", round, u, err)
		}
		req.Text = "after"
		res, err := s.AppendMessages(ctx, []store.AppendRequest{req})
		if err != nil || !res[0].Duplicate || res[0].Message.Seq != 1 || res[0].Message.Text != "before" {
			t.Fatalf("round %d: retry after reopen = %+v, %v; want the original as a duplicate", round, res, err)
		}
		var versions int
		if err := s.read.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&versions); err != nil || versions != len(migrations) {
			t.Fatalf("round %d: %d migrations recorded (%v), want %d", round, versions, err, len(migrations))
		}
		s.Close()
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dsn, want string
	}{
		{"empty", "", "empty dsn"},
		{"parent is a file", filepath.Join(file, "sub", "magpie.db"), "create data directory"},
		{"path is a directory", dir, "open sqlite"},
		{"query in path", filepath.Join(dir, "a?b"), "must not contain"},
		{"postgres refused", "postgres://nobody@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", "connect to postgres"},
	}
	for _, tt := range tests {
		s, err := Open(t.Context(), tt.dsn)
		if err == nil {
			s.Close()
			t.Errorf("%s: Open(%q) succeeded, want an error", tt.name, tt.dsn)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Open(%q) = %v, want an error mentioning %q", tt.name, tt.dsn, err, tt.want)
		}
	}
	if os.Geteuid() != 0 { // root writes anywhere
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(t.Context(), filepath.Join(ro, "magpie.db")); err == nil {
			s.Close()
			t.Errorf("Open in a read-only directory succeeded")
		}
	}
}

// TestGroupWindow checks the history window of group members, set up with
// SQL because the store interface has no way yet to create groups.
func TestGroupWindow(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) { testGroupWindow(t, be.open(t)) })
	}
}

func testGroupWindow(t *testing.T, s *Store) {
	ctx := t.Context()
	alice, bob, carol := createThree(t, s)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := s.write.ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	send := func(u store.User, cmid string) store.AppendResult {
		t.Helper()
		res, err := s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: "g_1", SenderID: u.ID, ClientMsgID: cmid, Text: cmid}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	exec(`INSERT INTO conversations(id, kind, last_seq, created_at, updated_at) VALUES ('g_1', 'group', 0, 1, 1)`)
	exec(`INSERT INTO members(conversation_id, user_id) VALUES ('g_1', $1), ('g_1', $2)`, alice.ID, bob.ID)
	send(alice, "a1")
	send(alice, "a2")
	exec(`INSERT INTO members(conversation_id, user_id, delivered_seq, read_seq, joined_seq) VALUES ('g_1', $1, 2, 2, 2)`, carol.ID)
	send(bob, "b3")
	send(bob, "b4")
	exec(`UPDATE members SET left_seq = 4 WHERE conversation_id = 'g_1' AND user_id = $1`, bob.ID)
	send(alice, "a5")

	seqs := func(u store.User, q store.MessageQuery) []uint64 {
		t.Helper()
		q.ConversationID = "g_1"
		msgs, err := s.Messages(ctx, u.ID, q)
		if err != nil {
			t.Fatalf("Messages(%s): %v", u.Username, err)
		}
		var out []uint64
		for _, m := range msgs {
			out = append(out, m.Seq)
		}
		return out
	}
	for _, tt := range []struct {
		who  store.User
		q    store.MessageQuery
		want []uint64
	}{
		{alice, store.MessageQuery{}, []uint64{1, 2, 3, 4, 5}},
		{carol, store.MessageQuery{}, []uint64{3, 4, 5}},
		{carol, store.MessageQuery{BeforeSeq: 4}, []uint64{3}},
		{carol, store.MessageQuery{AfterSeq: 1, BeforeSeq: 3}, nil},
		{bob, store.MessageQuery{}, []uint64{1, 2, 3, 4}},
		{bob, store.MessageQuery{AfterSeq: 3}, []uint64{4}},
	} {
		if got := seqs(tt.who, tt.q); !slices.Equal(got, tt.want) {
			t.Errorf("Messages(%s, %+v) = %v, want %v", tt.who.Username, tt.q, got, tt.want)
		}
	}

	if r := send(bob, "b6"); !errors.Is(r.Err, store.ErrNotMember) {
		t.Errorf("append by a member who left = %+v, want ErrNotMember", r)
	}
	if r := send(bob, "b3"); !r.Duplicate || r.Message.Seq != 3 {
		t.Errorf("retry by a member who left = %+v, want the original", r)
	}
	if _, err := s.MoveCursor(ctx, bob.ID, "g_1", store.Read, 4); !errors.Is(err, store.ErrNotMember) {
		t.Errorf("MoveCursor by a member who left: %v, want ErrNotMember", err)
	}
	if cs, err := s.Conversations(ctx, bob.ID); err != nil || len(cs) != 0 {
		t.Errorf("Conversations of a member who left = %+v, %v; want none", cs, err)
	}
	members, err := s.Members(ctx, "g_1")
	slices.Sort(members)
	if want := []int64{alice.ID, carol.ID}; err != nil || !slices.Equal(members, want) {
		t.Errorf("Members = %v, %v; want %v", members, err, want)
	}
	c, err := s.Conversation(ctx, carol.ID, "g_1")
	if err != nil || c.Kind != store.Group || c.LastSeq != 5 || c.Unread() != 3 || c.PeerID != 0 ||
		c.LastMessage == nil || c.LastMessage.Sender != "alice" {
		t.Errorf("Conversation(carol) = %+v, %v; want a group with 3 unread", c, err)
	}
}

// TestEmptyClientID: messages without a client id are never duplicates.
func TestEmptyClientID(t *testing.T) {
	for _, be := range backends(t) {
		s := be.open(t)
		ctx := t.Context()
		a, _ := s.CreateUser(ctx, store.DefaultApp, "a", "h")
		b, _ := s.CreateUser(ctx, store.DefaultApp, "b", "h")
		req := store.AppendRequest{ConversationID: store.PrivateConversationID(a.ID, b.ID), SenderID: a.ID, PeerID: b.ID}
		res, err := s.AppendMessages(ctx, []store.AppendRequest{req, req})
		if err != nil || res[0].Duplicate || res[1].Duplicate || res[1].Message.Seq != 2 {
			t.Fatalf("%s: two messages without client id = %+v, %v; want seqs 1 and 2", be.name, res, err)
		}
	}
}

func BenchmarkAppendBatch(b *testing.B) {
	for _, be := range backends(b) {
		for _, n := range []int{1, 100, 500} {
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, n), func(b *testing.B) { benchAppend(b, be.open(b), n) })
		}
	}
}

// benchAppend sends batches spread over 16 private conversations, as a
// logic node's group commit would see them.
func benchAppend(b *testing.B, s *Store, n int) {
	ctx := context.Background()
	var users []store.User
	for i := range 17 {
		u, err := s.CreateUser(ctx, store.DefaultApp, fmt.Sprintf("u%d", i), "h")
		if err != nil {
			b.Fatal(err)
		}
		users = append(users, u)
	}
	reqs := make([]store.AppendRequest, n)
	now := time.Now()
	var id int
	b.ReportAllocs()
	for b.Loop() {
		for i := range reqs {
			from, to := users[0], users[1+(id%16)]
			reqs[i] = store.AppendRequest{
				ConversationID: store.PrivateConversationID(from.ID, to.ID),
				SenderID:       from.ID, PeerID: to.ID,
				ClientMsgID: fmt.Sprintf("m%d", id), Text: "hello, this is a benchmark message", SentAt: now,
			}
			id++
		}
		res, err := s.AppendMessages(ctx, reqs)
		if err != nil {
			b.Fatal(err)
		}
		if res[0].Err != nil || res[0].Duplicate {
			b.Fatalf("result: %+v", res[0])
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// TestSQLitePragmas checks that the DSN's pragmas reach both handles: the
// durability promise rests on them.
func TestSQLitePragmas(t *testing.T) {
	s := openSQLiteTest(t)
	for _, db := range []struct {
		name string
		db   *sql.DB
	}{{"write", s.write}, {"read", s.read}} {
		for pragma, want := range map[string]string{
			"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000",
		} {
			var got string
			if err := db.db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil || got != want {
				t.Errorf("%s: PRAGMA %s = %q, %v; want %q", db.name, pragma, got, err, want)
			}
		}
	}
	if _, err := s.read.Exec(`INSERT INTO users(username, username_lower, password_hash, created_at) VALUES ('x', 'x', '', 0)`); err == nil {
		t.Errorf("a write through the read pool succeeded")
	}
}

// TestRetry drives the retry loop with the errors PostgreSQL reports when
// concurrent logic nodes collide.
func TestRetry(t *testing.T) {
	s := openSQLiteTest(t)
	pg := &Store{d: dialectPostgres, write: s.write, read: s.read}
	tests := []struct {
		code     string
		failures int
		wantErr  bool
		attempts int
	}{
		{"40P01", 2, false, 3}, // deadlock
		{"40001", 1, false, 2}, // serialization failure
		{"23505", 1, false, 2}, // unique violation
		{"40P01", 100, true, 8},
		{"22001", 1, true, 1}, // not transient
	}
	for _, tt := range tests {
		attempts := 0
		err := pg.inWriteTx(t.Context(), func(tx *sql.Tx) error {
			attempts++
			if attempts <= tt.failures {
				return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: tt.code})
			}
			return nil
		})
		if (err != nil) != tt.wantErr || attempts != tt.attempts {
			t.Errorf("code %s, %d failures: err %v after %d attempts; want error %v after %d", tt.code, tt.failures, err, attempts, tt.wantErr, tt.attempts)
		}
	}
}

// TestAppendCommittedMeanwhile: on PostgreSQL, a client id that another
// node commits while a batch runs sends the batch round again, which then
// answers it with the original; no seq is skipped.
func TestAppendCommittedMeanwhile(t *testing.T) {
	s := openPostgresTest(t)
	ctx := t.Context()
	alice, bob, carol := createThree(t, s)
	ac := store.PrivateConversationID(alice.ID, carol.ID)
	req := func(to store.User, cmid string) store.AppendRequest {
		return store.AppendRequest{ConversationID: store.PrivateConversationID(alice.ID, to.ID), SenderID: alice.ID,
			PeerID: to.ID, ClientMsgID: cmid, Text: cmid}
	}
	if _, err := s.AppendMessages(ctx, []store.AppendRequest{req(carol, "c1")}); err != nil {
		t.Fatal(err)
	}

	// The other node stores "k" in another conversation, not yet committed.
	other, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	var otherPID int
	if err := other.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&otherPID); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, `UPDATE conversations SET last_seq = 2 WHERE id = $1`, ac); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, `INSERT INTO messages(conversation_id, seq, sender_id, client_msg_id, text, sent_at)
		VALUES ($1, 2, $2, 'k', 'elsewhere', 1)`, ac, alice.ID); err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res []store.AppendResult
		err error
	}
	done := make(chan outcome)
	go func() {
		res, err := s.AppendMessages(ctx, []store.AppendRequest{req(bob, "x"), req(bob, "k"), req(bob, "y")})
		done <- outcome{res, err}
	}()
	// A barrier, not a sleep: go on once the batch waits on the
	// uncommitted "k" (a backend is blocked by the other node's).
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid))`, otherPID).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited on the uncommitted row")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatalf("AppendMessages: %v", o.err)
	}
	for i, want := range []struct {
		conv string
		seq  uint64
		dup  bool
		text string
	}{
		{store.PrivateConversationID(alice.ID, bob.ID), 1, false, "x"},
		{ac, 2, true, "elsewhere"},
		{store.PrivateConversationID(alice.ID, bob.ID), 2, false, "y"},
	} {
		if r := o.res[i]; r.Err != nil || r.Duplicate != want.dup || r.Message.ConversationID != want.conv ||
			r.Message.Seq != want.seq || r.Message.Text != want.text {
			t.Errorf("result %d = %+v, %v (dup %v); want seq %d of %s, dup %v", i, r.Message, r.Err, r.Duplicate, want.seq, want.conv, want.dup)
		}
	}
}

// createThree creates the users alice, bob and carol.
func createThree(t *testing.T, s *Store) (alice, bob, carol store.User) {
	t.Helper()
	var users [3]store.User
	for i, n := range []string{"alice", "bob", "carol"} {
		u, err := s.CreateUser(t.Context(), store.DefaultApp, n, "h")
		if err != nil {
			t.Fatal(err)
		}
		users[i] = u
	}
	return users[0], users[1], users[2]
}

// TestMigrateUsersToSources: a database from before migration 8 (apps)
// keeps its users, who come out as local accounts of the default app with
// an empty profile; the same name is then free in another app.
func TestMigrateUsersToSources(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := b.open(t)
			// Back to version 7: the apps (and the later steps) gone, unrecorded.
			undo15 := undoFriendSeqs
			for _, q := range append(undo15[:len(undo15):len(undo15)],
				`DROP TABLE device_cursors`, `DROP TABLE device_sessions`,
				`ALTER TABLE users DROP COLUMN avatar_url`, `ALTER TABLE users DROP COLUMN custom`,
				`ALTER TABLE users DROP COLUMN disabled_at`, `ALTER TABLE users DROP COLUMN deleted_at`,
				`DROP TABLE scheduled_messages`, `DROP TABLE imported_groups`,
				`ALTER TABLE members DROP COLUMN hidden_seq`, `ALTER TABLE members DROP COLUMN cleared_seq`,
				`DROP INDEX users_app`, `ALTER TABLE users DROP COLUMN app_id`, `DROP TABLE apps`,
				`DELETE FROM schema_migrations WHERE version >= 8`,
				`INSERT INTO users(username, username_lower, password_hash, created_at) VALUES ('Old', 'old', 'h', 1)`,
			) {
				if _, err := s.write.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := migrate(ctx, s.write, s.d); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			u, err := s.UserByName(ctx, store.DefaultApp, "old")
			if err != nil || u.Username != "Old" || u.PasswordHash != "h" || u.AuthSource != "local" || u.DisplayName != "" || u.Email != "" {
				t.Fatalf("UserByName after the migration = %+v, %v; want the local user Old with its hash", u, err)
			}
			if u.AppID != store.DefaultApp {
				t.Errorf("migrated user's app = %d, want the default app %d", u.AppID, store.DefaultApp)
			}
			apps, err := s.AppList(ctx)
			if err != nil || len(apps) != 1 || apps[0].ID != store.DefaultApp || apps[0].Name != store.DefaultAppName {
				t.Fatalf("AppList after the migration = %+v, %v; want the default app alone", apps, err)
			}
			other, err := s.CreateApp(ctx, store.App{Name: "other"})
			if err != nil {
				t.Fatal(err)
			}
			if twin, err := s.CreateUser(ctx, other.ID, "OLD", "h2"); err != nil || twin.ID == u.ID {
				t.Errorf("CreateUser(other app, OLD) = %+v, %v; want a new user", twin, err)
			}
		})
	}
}

// undoGroupSync takes migration 17 (and 18 and 20) back out.
var undoGroupSync = []string{
	`DROP INDEX scheduled_pending_due`, `ALTER TABLE scheduled_messages DROP COLUMN refused_at`, // version 20
	`ALTER TABLE scheduled_messages DROP COLUMN refused_code`, `ALTER TABLE scheduled_messages DROP COLUMN refused_reason`,
	`ALTER TABLE device_sessions DROP COLUMN conn`, // version 18
	`DROP TABLE group_join_requests`, `DROP TABLE group_sync`, `ALTER TABLE members DROP COLUMN version`,
	`ALTER TABLE conversations DROP COLUMN version`, `ALTER TABLE conversations DROP COLUMN max_members`,
	`ALTER TABLE conversations DROP COLUMN avatar_url`, `ALTER TABLE conversations DROP COLUMN notice`,
	`ALTER TABLE conversations DROP COLUMN intro`,
	`DELETE FROM schema_migrations WHERE version >= 17`,
}

// undoFriendSeqs takes migrations 20, 18, 17 and 15 back out (16 and 19 run again as they are).
var undoFriendSeqs = []string{
	`DROP INDEX scheduled_pending_due`, `ALTER TABLE scheduled_messages DROP COLUMN refused_at`, // version 20
	`ALTER TABLE scheduled_messages DROP COLUMN refused_code`, `ALTER TABLE scheduled_messages DROP COLUMN refused_reason`,
	`ALTER TABLE device_sessions DROP COLUMN conn`, // version 18
	`DROP TABLE group_join_requests`, `DROP TABLE group_sync`, `ALTER TABLE members DROP COLUMN version`,
	`ALTER TABLE conversations DROP COLUMN version`, `ALTER TABLE conversations DROP COLUMN max_members`,
	`ALTER TABLE conversations DROP COLUMN avatar_url`, `ALTER TABLE conversations DROP COLUMN notice`,
	`ALTER TABLE conversations DROP COLUMN intro`,
	`DROP TABLE friend_removals`, `DROP INDEX friends_seq`,
	`ALTER TABLE friends DROP COLUMN seq`, `ALTER TABLE friends DROP COLUMN remark`, `ALTER TABLE friends DROP COLUMN category`,
	`ALTER TABLE users DROP COLUMN friend_seq`, `ALTER TABLE users DROP COLUMN friend_policy`,
	`DELETE FROM schema_migrations WHERE version >= 15`,
}

// TestMigrateFriendSeqs: friendships made before migration 15 get friend
// seqs 1..n per user, so a first sync lists them and later changes come
// after them.
func TestMigrateFriendSeqs(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := b.open(t)
			alice, bob, carol := createThree(t, s)
			for _, q := range undoFriendSeqs {
				if _, err := s.write.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			for _, p := range [][2]int64{{alice.ID, bob.ID}, {bob.ID, alice.ID}, {alice.ID, carol.ID}, {carol.ID, alice.ID}} {
				if _, err := s.write.ExecContext(ctx, `INSERT INTO friends(user_id, friend_id, since) VALUES ($1, $2, 1)`, p[0], p[1]); err != nil {
					t.Fatal(err)
				}
			}
			if err := migrate(ctx, s.write, s.d); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			ch, seq, err := s.FriendChanges(ctx, alice.ID, 0, 10)
			if err != nil || seq != 2 || len(ch) != 2 || ch[0].Seq != 1 || ch[1].Seq != 2 {
				t.Fatalf("alice's changes after the migration = %+v, seq %d, %v; want two friends at 1 and 2", ch, seq, err)
			}
			if err := s.RemoveFriend(ctx, alice.ID, bob.ID); err != nil {
				t.Fatal(err)
			}
			if ch, seq, _ := s.FriendChanges(ctx, alice.ID, 2, 10); seq != 3 || len(ch) != 1 || !ch[0].Removed {
				t.Errorf("after a removal = %+v, seq %d; want bob removed at 3", ch, seq)
			}
			if _, seq, _ := s.FriendChanges(ctx, bob.ID, 0, 10); seq != 2 {
				t.Errorf("bob's seq = %d; want 2 (one friend migrated, one removal)", seq)
			}
		})
	}
}

// TestMigrateGroupSync: groups made before migration 17 are at version 0
// and get the new fields empty; their first change after it is listed.
func TestMigrateGroupSync(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			s := b.open(t)
			alice, bob, _ := createThree(t, s)
			g, _, err := s.CreateGroup(ctx, store.NewGroup{Name: "old", OwnerID: alice.ID, MemberIDs: []int64{bob.ID}})
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range undoGroupSync {
				if _, err := s.write.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := migrate(ctx, s.write, s.d); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			if got, err := s.Group(ctx, g.ID); err != nil || got.Version != 0 || got.Intro != "" || got.MaxMembers != 0 || got.MemberCount != 2 {
				t.Fatalf("group after the migration = %+v, %v", got, err)
			}
			name := "new"
			if _, err := s.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpUpdate, Name: &name,
				Event: store.Event{Type: "updated"}}); err != nil {
				t.Fatal(err)
			}
			if ch, v, err := s.GroupChanges(ctx, bob.ID, 0, 10); err != nil || len(ch) != 1 || ch[0].Group.Name != "new" || v != 1 {
				t.Errorf("bob's changes = %+v, %d, %v; want the renamed group at 1", ch, v, err)
			}
		})
	}
}
