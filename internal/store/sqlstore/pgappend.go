package sqlstore

import (
	"context"
	"slices"
)

// PostgreSQL's texts of AppendMessages' statements over many rows (see
// rowsCTE for the rows). Every lookup is a LATERAL subquery with LIMIT 1
// on a unique key: PostgreSQL plans a join over unnest() arrays as a hash
// join over a sequential scan whenever it believes a table small, as on a
// fresh or never analysed database, and a prepared statement's cached
// generic plan keeps that plan as the table grows (the duplicate check
// alone then cost milliseconds per batch, scanning all of messages). An
// index probe per row is right at every size. The UPDATEs find their rows
// by the ctid of a lookup in the same statement.

// pick returns the PostgreSQL text on PostgreSQL and the portable one on
// SQLite.
func (d dialect) pick(portable, postgres string) string {
	if d == dialectPostgres {
		return postgres
	}
	return portable
}

const (
	// pgStoredSQL: which of k(s, c) (sender, client id) are stored.
	pgStoredSQL = `SELECT m.sender_id, m.client_msg_id FROM k CROSS JOIN LATERAL (
		SELECT m.sender_id, m.client_msg_id FROM messages m
		WHERE m.sender_id = k.s AND m.client_msg_id = k.c LIMIT 1) AS m`

	// pgExistingSQL: which conversations of k(id) exist.
	pgExistingSQL = `SELECT c.id FROM k CROSS JOIN LATERAL (
		SELECT c.id FROM conversations c WHERE c.id = k.id LIMIT 1) AS c`

	// pgLockConversationsSQL reads and locks the conversations of k(id),
	// in k's order.
	pgLockConversationsSQL = `SELECT c.id, c.last_seq, c.updated_at, c.kind, c.muted_until FROM k CROSS JOIN LATERAL (
		SELECT c.id, c.last_seq, c.updated_at, c.kind, c.muted_until FROM conversations c
		WHERE c.id = k.id LIMIT 1 FOR UPDATE) AS c`

	// pgUpdateConversationsSQL writes v(id, last_seq, updated_at).
	pgUpdateConversationsSQL = `UPDATE conversations SET last_seq = x.last_seq, updated_at = x.updated_at
		FROM (SELECT c.ctid AS t, v.last_seq, v.updated_at FROM v CROSS JOIN LATERAL (
			SELECT c.ctid FROM conversations c WHERE c.id = v.id LIMIT 1) AS c) AS x
		WHERE conversations.ctid = x.t`

	// pgUpdateSendersSQL locks the members of v(c, u, s), in v's order,
	// and raises both their cursors to s.
	pgUpdateSendersSQL = `UPDATE members SET delivered_seq = GREATEST(delivered_seq, x.s), read_seq = GREATEST(read_seq, x.s)
		FROM (SELECT m.ctid AS t, v.s FROM v CROSS JOIN LATERAL (
			SELECT m.ctid FROM members m WHERE m.conversation_id = v.c AND m.user_id = v.u LIMIT 1 FOR UPDATE) AS m) AS x
		WHERE members.ctid = x.t`
)

// updateSendersPG runs pgUpdateSendersSQL over rows. A row that another
// transaction changed while the statement waited for its lock is locked
// at a version the statement's snapshot cannot see, so the UPDATE skips
// it; the statement then runs again, with a snapshot that sees every row
// it locked (raising a cursor twice changes nothing).
func (b *appendBatch) updateSendersPG(ctx context.Context, rows [][]any) error {
	for chunk := range slices.Chunk(rows, chunkRows) {
		cte, args := b.d.rowsCTE(queuedSenders.head, queuedSenders.types, chunk)
		for attempt := 1; ; attempt++ {
			res, err := b.tx.ExecContext(ctx, "WITH "+cte+" "+pgUpdateSendersSQL, args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if int(n) == len(chunk) || attempt == 2 {
				break
			}
		}
	}
	return nil
}

// pgLoadMembersSQL reads the memberships of k(c, u, p). It locks nothing:
// the batch holds its conversations' rows, which every change of
// membership locks first, and a lock on the senders' rows, held to the
// commit, would hold up their receipts (MoveCursors) for the whole batch.
// flush's cursor update locks them, in k's order, the order MoveCursors
// locks in, one statement before the commit.
var pgLoadMembersSQL = `SELECT x.* FROM k CROSS JOIN LATERAL (
		SELECT m.conversation_id, m.user_id, ` + memberCols("k.p") + ` FROM members m
		WHERE m.conversation_id = k.c AND m.user_id = k.u LIMIT 1) AS x`
