// Package sqlstore implements store.Store on SQLite (modernc.org/sqlite, no
// cgo) and PostgreSQL (pgx), with one set of queries and a small dialect
// layer for the differences.
//
// A Store is safe for concurrent use. On SQLite all writes go through one
// connection, so concurrent writers queue instead of failing with
// SQLITE_BUSY, while reads use a separate pool that WAL runs beside the
// writer. On PostgreSQL one pool serves both, and AppendMessages retries a
// batch that lost a race with another logic node.
//
// Choices the store interface leaves open:
//   - An empty ClientMsgID is stored as NULL and never deduplicated.
//   - A member who left a group may still page through the messages of
//     their window, but Conversation(s), MoveCursor and AppendMessages treat
//     them as not a member.
//   - A private conversation with oneself is allowed; its peer is the user.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store backed by SQLite or PostgreSQL.
type Store struct {
	d      dialect
	write  *sql.DB // SQLite: exactly one connection. PostgreSQL: same as read.
	read   *sql.DB
	hot    hotStmts
	reads  stmtCache  // AppendMessages' reads over many rows
	known  knownConvs // conversations that exist, so AppendMessages need not ask
	hc     *hotCache  // SQLite only: AppendMessages' reads, while this process alone writes
	pipe   pipeline   // PostgreSQL only: the two-round-trip append's counters
	closed atomic.Bool
}

// hotStmts are prepared once because they run per message or receipt;
// tx.StmtContext reuses them on the connection they were prepared on.
type hotStmts struct {
	member     *sql.Stmt // AppendMessages: a membership the batch created
	findDup    *sql.Stmt // AppendMessages: the original of a retry
	insertText *sql.Stmt // AppendMessages writes with these on SQLite: see execRows
	insertRow  *sql.Stmt
	convSet    *sql.Stmt
	senderSet  *sql.Stmt
	cursorGet  *sql.Stmt // MoveCursors runs these per receipt
	cursorSet  *sql.Stmt
	indexAfter *sql.Stmt // SQLite only: insertQueued indexes its rows for search with it
}

// Open opens (creating if needed) the database named by dsn and brings its
// schema up to date. EngineOf(dsn) chooses the engine: a postgres:// or
// postgresql:// URL selects PostgreSQL; anything else is a SQLite file
// path, whose parent directory is created.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if dsn == "" {
		return nil, errors.New("sqlstore: empty dsn")
	}
	s := &Store{}
	if isPostgresDSN(dsn) {
		db, err := openPostgres(ctx, dsn)
		if err != nil {
			return nil, err
		}
		s.d, s.write, s.read = dialectPostgres, db, db
	} else {
		w, r, err := openSQLite(dsn)
		if err != nil {
			return nil, err
		}
		s.d, s.write, s.read = dialectSQLite, w, r
	}
	if err := s.init(ctx); err != nil {
		s.closeDBs()
		if s.d == dialectSQLite {
			return nil, fmt.Errorf("sqlstore: open sqlite %q: %w", dsn, err)
		}
		return nil, err
	}
	if s.d == dialectSQLite {
		// init wrote to the database, so the -wal and -shm files exist.
		if err := restrictSidecars(dsn); err != nil {
			s.closeDBs()
			return nil, err
		}
	}
	return s, nil
}

// Engine is the engine the store runs on.
func (s *Store) Engine() Engine {
	if s.d == dialectPostgres {
		return PostgreSQL
	}
	return SQLite
}

func (s *Store) init(ctx context.Context) error {
	if err := migrate(ctx, s.write, s.d); err != nil {
		return err
	}
	var err error
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = s.write.PrepareContext(ctx, q)
		return st
	}
	s.hot.member = prep(`SELECT ` + memberCols("$3") + ` FROM members m WHERE m.conversation_id = $1 AND m.user_id = $2`)
	s.hot.findDup = prep(`SELECT conversation_id, seq, text, sent_at, kind, ref_seq FROM messages
		WHERE sender_id = $1 AND client_msg_id = $2`)
	s.hot.insertText = prep(`INSERT INTO messages(conversation_id, seq, sender_id, client_msg_id, text, sent_at)
		VALUES ($1, $2, $3, $4, $5, $6)`)
	s.hot.insertRow = prep(insertMessage + `VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`)
	s.hot.convSet = prep(`UPDATE conversations SET last_seq = $2, updated_at = $3 WHERE id = $1`)
	s.hot.senderSet = prep(`UPDATE members SET
		delivered_seq = CASE WHEN delivered_seq < $3 THEN $3 ELSE delivered_seq END,
		read_seq = CASE WHEN read_seq < $3 THEN $3 ELSE read_seq END
		WHERE conversation_id = $1 AND user_id = $2`)
	lockMember := ""
	if s.d == dialectPostgres {
		lockMember = " FOR UPDATE OF m"
	}
	s.hot.cursorGet = prep(`SELECT m.delivered_seq, m.read_seq, c.last_seq
		FROM members m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.conversation_id = $1 AND m.user_id = $2 AND m.left_seq IS NULL` + lockMember)
	s.hot.cursorSet = prep(`UPDATE members SET delivered_seq = $1, read_seq = $2
		WHERE conversation_id = $3 AND user_id = $4`)
	if s.d == dialectSQLite {
		s.hot.indexAfter = prep(indexMessagesAfter)
	}
	if err == nil && s.d == dialectSQLite {
		s.hc, err = newHotCache(ctx, s.write)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: prepare: %w", err)
	}
	return nil
}

// Close releases the databases. It is safe to call more than once; other
// calls made after it return store.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.hot.member, s.hot.findDup, s.hot.insertText, s.hot.insertRow, s.hot.convSet, s.hot.senderSet, s.hot.cursorGet, s.hot.cursorSet, s.hot.indexAfter} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.reads.close(), s.hc.close())
	errs = append(errs, s.write.Close())
	if s.read != s.write {
		errs = append(errs, s.read.Close())
	}
	return errors.Join(errs...)
}

// check is called first by every method. A call racing with Close may
// still fail with database/sql's own "database is closed" error.
func (s *Store) check() error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return nil
}

// inTx is the context for the statements of a write transaction begun
// with ctx. On SQLite it cannot be cancelled: modernc starts a goroutine
// and installs a progress handler for every statement whose context can
// be, several statements a message, and these run for microseconds. The
// transaction still ends with ctx: database/sql rolls it back once ctx is
// done, after the statement running then, and the next one fails.
func (s *Store) inTx(ctx context.Context) context.Context {
	if s.d == dialectPostgres {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// inWriteTx runs fn in a write transaction, retrying from the start when
// the dialect says a failure was a transient conflict.
func (s *Store) inWriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	const maxAttempts = 8
	var err error
	for attempt := 1; ; attempt++ {
		err = s.tryWriteTx(ctx, fn)
		if err == nil || !s.d.isRetryable(err) || attempt == maxAttempts {
			return err
		}
		// A short growing pause lets the winning transaction commit
		// before we collide with it again.
		t := time.NewTimer(time.Duration(attempt) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

func (s *Store) tryWriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// millis and timeOf map the zero time to 0 and back, so an unset time
// survives a round trip as the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func timeOf(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// nullString stores "" as NULL.
func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
