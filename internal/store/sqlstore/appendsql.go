package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"sync"

	"github.com/magpie-im/magpie/internal/store"
)

// The statements of AppendMessages that cover many rows at once: a batch
// spanning hundreds of conversations would otherwise cost several
// statements, and on PostgreSQL as many round trips, per message.

// chunkRows bounds the rows of one statement: a batch of the logic role's
// default size (512) takes one, and SQLite allows 32766 parameters.
const chunkRows = 512

// rowsOf describes the rows a batched statement reads from: the common
// table expression head, e.g. "k(a, b)", with columns of SQL types types.
type rowsOf struct {
	head  string
	types []string
}

// stmtCache holds prepared statements by text. They are prepared after a
// transaction, not in it: on SQLite that would wait for the one write
// connection, which the transaction holds.
type stmtCache struct{ m sync.Map }

func (c *stmtCache) get(query string) *sql.Stmt {
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt)
	}
	return nil
}

// prepare adds queries to the cache. A failure only leaves them out.
func (c *stmtCache) prepare(ctx context.Context, db *sql.DB, queries []string) {
	for _, q := range queries {
		if c.get(q) != nil {
			continue
		}
		if st, err := db.PrepareContext(ctx, q); err == nil {
			if _, loaded := c.m.LoadOrStore(q, st); loaded {
				st.Close()
			}
		}
	}
}

func (c *stmtCache) close() error {
	var errs []error
	c.m.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(errs...)
}

// readChunk is how many of n rows a batched read takes in one statement.
// On SQLite that is a power of two: its texts then come in few lengths,
// each parsed once (see stmtCache); the one PostgreSQL text fits all.
func (b *appendBatch) readChunk(n int) int {
	n = min(n, chunkRows)
	if b.d == dialectPostgres {
		return n
	}
	return 1 << (bits.Len(uint(n)) - 1)
}

// queryRows runs "WITH <rows> query" over rows in chunks, calling scan for
// each row of the results.
func (b *appendBatch) queryRows(ctx context.Context, of rowsOf, rows [][]any, query string, scan func(*sql.Rows) error) error {
	for len(rows) > 0 {
		chunk := rows[:b.readChunk(len(rows))]
		rows = rows[len(chunk):]
		cte, args := b.d.rowsCTE(of.head, of.types, chunk)
		res, err := b.query(ctx, "WITH "+cte+" "+query, args)
		if err != nil {
			return err
		}
		for res.Next() {
			if err := scan(res); err != nil {
				res.Close()
				return err
			}
		}
		if err := errors.Join(res.Close(), res.Err()); err != nil {
			return err
		}
	}
	return nil
}

// query runs a read over many rows, prepared if it ran before.
func (b *appendBatch) query(ctx context.Context, query string, args []any) (*sql.Rows, error) {
	if st := b.reads.get(query); st != nil {
		return b.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	b.unprepared = append(b.unprepared, query)
	return b.tx.QueryContext(ctx, query, args...)
}

// execRows writes rows: on PostgreSQL with "WITH <rows> stmt" per chunk,
// as each statement costs a round trip; on SQLite, which runs in-process,
// row by row with the prepared statement and arguments that one gives.
// There that costs less than parsing a statement over many rows, and for
// an INSERT less than the statement journal SQLite keeps for one that may
// fail halfway.
func (b *appendBatch) execRows(ctx context.Context, of rowsOf, rows [][]any, stmt string, one func(row []any) (*sql.Stmt, []any)) error {
	if b.d != dialectPostgres {
		bound := make(map[*sql.Stmt]*sql.Stmt, 2) // by hot statement
		for _, row := range rows {
			st, args := one(row)
			if bound[st] == nil {
				bound[st] = b.tx.StmtContext(ctx, st)
			}
			if _, err := bound[st].ExecContext(ctx, args...); err != nil {
				return err
			}
		}
		return nil
	}
	for chunk := range slices.Chunk(rows, chunkRows) {
		cte, args := b.d.rowsCTE(of.head, of.types, chunk)
		if _, err := b.tx.ExecContext(ctx, "WITH "+cte+" "+stmt, args...); err != nil {
			return err
		}
	}
	return nil
}

// whole is the one of execRows that runs st with the whole row.
func whole(st *sql.Stmt) func([]any) (*sql.Stmt, []any) {
	return func(row []any) (*sql.Stmt, []any) { return st, row }
}

// queryIDs runs "WITH k(id) query" over ids in chunks, calling scan for
// each row.
func (b *appendBatch) queryIDs(ctx context.Context, query string, ids []string, scan func(*sql.Rows) error) error {
	rows := make([][]any, len(ids))
	for i, id := range ids {
		rows[i] = []any{id}
	}
	return b.queryRows(ctx, rowsOf{"k(id)", []string{"TEXT"}}, rows, query, scan)
}

// loadStored learns which of the batch's client ids were committed before
// this attempt began. append answers those as duplicates and inserts the
// rest knowing that none may conflict (see insertQueued).
func (b *appendBatch) loadStored(ctx context.Context, reqs []store.AppendRequest) error {
	keys := make(map[dupKey]bool)
	var rows [][]any
	for _, r := range reqs {
		k := dupKey{r.SenderID, r.ClientMsgID}
		if k.cmid != "" && !keys[k] {
			keys[k] = true
			rows = append(rows, []any{k.sender, k.cmid})
		}
	}
	return b.queryRows(ctx, rowsOf{"k(s, c)", []string{"BIGINT", "TEXT"}}, rows,
		b.d.pick(`SELECT m.sender_id, m.client_msg_id FROM k JOIN messages m ON m.sender_id = k.s AND m.client_msg_id = k.c`, pgStoredSQL),
		func(res *sql.Rows) error {
			var k dupKey
			err := res.Scan(&k.sender, &k.cmid)
			b.stored[k] = true
			return err
		})
}

// memberCols are the columns of memberState for the member m of a
// conversation whose peer is the expression peer (0 outside private chats):
// whether the peer blocked the sender and whether they are friends come
// with the membership in one primary-key read each.
func memberCols(peer string) string {
	return `m.left_seq, m.role, m.muted_until, m.joined_seq,
		EXISTS(SELECT 1 FROM blocks b WHERE b.user_id = ` + peer + ` AND b.blocked_id = m.user_id),
		EXISTS(SELECT 1 FROM friends f WHERE f.user_id = m.user_id AND f.friend_id = ` + peer + `)`
}

// scanMember scans dests followed by memberCols.
func scanMember(sc interface{ Scan(...any) error }, dests ...any) (memberState, error) {
	var ms memberState
	var left sql.NullInt64
	var role string
	err := sc.Scan(append(dests, &left, &role, &ms.mutedUntil, &ms.joinedSeq, &ms.blocked, &ms.friends)...)
	ms.current = err == nil && !left.Valid
	ms.role = store.Role(role)
	return ms, err
}

// loadMembers reads the membership of each (conversation, sender) of the
// batch at once, with the peer of its first request that is no retry.
func (b *appendBatch) loadMembers(ctx context.Context, reqs []store.AppendRequest) error {
	peers := make(map[memberKey]int64)
	for _, r := range reqs {
		mk := memberKey{r.ConversationID, r.SenderID}
		if _, ok := peers[mk]; !ok && !b.stored[dupKey{r.SenderID, r.ClientMsgID}] {
			peers[mk] = r.PeerID
		}
	}
	keys := slices.SortedFunc(maps.Keys(peers), compareMemberKeys)
	rows := make([][]any, len(keys))
	for i, mk := range keys {
		rows[i] = []any{mk.conv, mk.user, peers[mk]}
		b.members[mk] = memberState{} // unless found: not a member
	}
	return b.queryRows(ctx, rowsOf{"k(c, u, p)", []string{"TEXT", "BIGINT", "BIGINT"}}, rows,
		b.d.pick(`SELECT m.conversation_id, m.user_id, `+memberCols("k.p")+`
		FROM k JOIN members m ON m.conversation_id = k.c AND m.user_id = k.u`, pgLoadMembersSQL),
		func(res *sql.Rows) error {
			var mk memberKey
			ms, err := scanMember(res, &mk.conv, &mk.user)
			b.members[mk] = ms
			return err
		})
}

// queue adds a message to the rows insertQueued will insert.
func (b *appendBatch) queue(r store.AppendRequest, seq, sentAt int64) {
	var fileID any
	var file store.FileRef
	if r.File != nil {
		file, fileID = *r.File, r.File.ID
	}
	b.queued = append(b.queued, []any{r.ConversationID, seq, r.SenderID, nullString(r.ClientMsgID), r.Text, sentAt,
		int64(r.Kind), int64(r.RefSeq), fileID, file.Name, file.ContentType, file.Size})
}

// insertMessage is the INSERT of insertQueued, before its rows.
const insertMessage = `INSERT INTO messages(conversation_id, seq, sender_id, client_msg_id, text, sent_at,
	kind, ref_seq, file_id, file_name, file_type, file_size) `

// queuedRows are the columns of a queued row, in the order of insertMessage.
var queuedRows = rowsOf{"v(c, seq, s, cmid, text, sent, kind, ref, fid, fname, ftype, fsize)",
	[]string{"TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BIGINT", "INTEGER", "BIGINT", "TEXT", "TEXT", "TEXT", "BIGINT"}}

// insertOne is the one of execRows for a queued row. Plain text, nearly
// all traffic, binds only the six columns it sets; the others of its row
// are their columns' defaults.
func (b *appendBatch) insertOne(row []any) (*sql.Stmt, []any) {
	if row[6] == any(int64(store.KindText)) && row[7] == any(int64(0)) && row[8] == nil {
		return b.hot.insertText, row[:6]
	}
	return b.hot.insertRow, row
}

// insertQueued inserts the queued messages. Their seqs are assigned, so no
// row may be skipped: a client id that another node committed since
// loadStored fails the statement with a unique violation instead, and
// inWriteTx runs the batch again, which then answers it as a duplicate.
//
// On SQLite it then indexes them for search in one statement (see
// indexAfter), before anything in the batch may edit or recall them: the
// rows from the first one's rowid on, which SQLite gives as one more than
// the table's highest (messages has no AUTOINCREMENT, so only a table
// whose rowids reached the maximum would make it pick a random one).
func (b *appendBatch) insertQueued(ctx context.Context) error {
	if b.d == dialectPostgres {
		err := b.execRows(ctx, queuedRows, b.queued, insertMessage+`SELECT * FROM v`, b.insertOne)
		b.queued = b.queued[:0]
		if err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		return nil
	}
	if len(b.queued) == 0 {
		return nil
	}
	first := int64(-1)
	bound := make(map[*sql.Stmt]*sql.Stmt, 2) // by hot statement
	for _, row := range b.queued {
		st, args := b.insertOne(row)
		if bound[st] == nil {
			bound[st] = b.tx.StmtContext(ctx, st)
		}
		res, err := bound[st].ExecContext(ctx, args...)
		if err == nil && first < 0 {
			first, err = res.LastInsertId()
		}
		if err != nil {
			b.queued = b.queued[:0]
			return fmt.Errorf("insert messages: %w", err)
		}
	}
	b.queued = b.queued[:0]
	if _, err := b.tx.StmtContext(ctx, b.hot.indexAfter).ExecContext(ctx, first-1); err != nil {
		return fmt.Errorf("index messages for search: %w", err)
	}
	return nil
}

// updateConversations writes the last seq and time of conversations ids,
// whose rows the batch has locked.
func (b *appendBatch) updateConversations(ctx context.Context, ids []string) error {
	rows := make([][]any, len(ids))
	for i, id := range ids {
		rows[i] = []any{id, b.convs[id].lastSeq, b.convs[id].updatedAt}
	}
	return b.execRows(ctx, rowsOf{"v(id, last_seq, updated_at)", []string{"TEXT", "BIGINT", "BIGINT"}}, rows,
		pgUpdateConversationsSQL,
		whole(b.hot.convSet))
}

// updateSenders moves both cursors of each sender of keys, in that order,
// up to the last message they sent.
func (b *appendBatch) updateSenders(ctx context.Context, keys []memberKey) error {
	rows := make([][]any, len(keys))
	for i, k := range keys {
		rows[i] = []any{k.conv, k.user, b.senderSeq[k]}
	}
	if b.d == dialectPostgres {
		return b.updateSendersPG(ctx, rows)
	}
	return b.execRows(ctx, queuedSenders, rows, "", whole(b.hot.senderSet))
}

// queuedSenders are the rows of updateSenders: conversation, sender, seq.
var queuedSenders = rowsOf{"v(c, u, s)", []string{"TEXT", "BIGINT", "BIGINT"}}
