package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// The two-round-trip append on PostgreSQL. The locking path (messages.go)
// is BEGIN, four reads, three writes and COMMIT: nine round trips, with the
// conversations' rows locked across six of them, and at low rates, where a
// batch holds one or two messages, those round trips are the ACK's
// latency. This path takes two and holds no lock across either:
//
//  1. one pipeline of three reads, locking nothing: which of the batch's
//     client ids are stored, its conversations (last seq, kind, mute) and
//     its senders' memberships;
//  2. the batch's rules and seqs decided in memory from what was read
//     (appendBatch.append, which then touches no database), and one
//     statement, committed by itself, that writes all of it.
//
// That statement raises each conversation's last seq only where it still
// is what step 1 read, and gives a message its seq only if its
// conversation and its sender's cursors were both updated; otherwise the
// seq is NULL, the messages' NOT NULL constraint fails the statement, and
// nothing of it is kept. Every change of membership, role or mute appends
// an event in the transaction that makes it (groupchange.go), so an
// unchanged last seq means the memberships and mutes step 1 read still
// hold (and such an event took the seq step 1 would give our first
// message, which the messages' primary key refuses too). Duplicates
// committed since step 1 fail the client ids' unique index the same way.
// Blocks and friendships are read unlocked on both paths: one committed
// between the reads and the write comes after the message, as one
// committed during the locking path's transaction would. On any such failure, and whenever the batch needs
// more than this path reads (a client id already stored, a conversation
// not yet created, a sender who is not a member, a recall or edit), the
// batch runs on the locking path instead, which decides every case.

const (
	// pgReadConversationsSQL is pgLockConversationsSQL without the lock.
	pgReadConversationsSQL = `SELECT c.id, c.last_seq, c.updated_at, c.kind, c.muted_until FROM k CROSS JOIN LATERAL (
		SELECT c.id, c.last_seq, c.updated_at, c.kind, c.muted_until FROM conversations c
		WHERE c.id = k.id LIMIT 1) AS c`

	// pgWriteBatchSQL writes a batch decided on step 1's reads: $1-$12 the
	// message rows (queuedRows), $13-$16 the conversations (id, last seq
	// read, new last seq, updated_at), $17-$19 the senders (queuedSenders).
	// Lookups are LATERAL ... LIMIT 1 probes, for the plans (see
	// pgappend.go); the conversations are updated before their senders,
	// the order of every other writer.
	pgWriteBatchSQL = `WITH v(c, seq, s, cmid, text, sent, kind, ref, fid, fname, ftype, fsize) AS (
		SELECT * FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS BIGINT[]), CAST($3 AS BIGINT[]), CAST($4 AS TEXT[]),
			CAST($5 AS TEXT[]), CAST($6 AS BIGINT[]), CAST($7 AS INTEGER[]), CAST($8 AS BIGINT[]),
			CAST($9 AS TEXT[]), CAST($10 AS TEXT[]), CAST($11 AS TEXT[]), CAST($12 AS BIGINT[]))),
	cv(id, prev, last_seq, updated_at) AS (
		SELECT * FROM unnest(CAST($13 AS TEXT[]), CAST($14 AS BIGINT[]), CAST($15 AS BIGINT[]), CAST($16 AS BIGINT[]))),
	sd(c, u, s) AS (SELECT * FROM unnest(CAST($17 AS TEXT[]), CAST($18 AS BIGINT[]), CAST($19 AS BIGINT[]))),
	up AS (UPDATE conversations SET last_seq = x.last_seq, updated_at = x.updated_at
		FROM (SELECT c.ctid AS t, cv.prev, cv.last_seq, cv.updated_at FROM cv CROSS JOIN LATERAL (
			SELECT c.ctid FROM conversations c WHERE c.id = cv.id LIMIT 1) AS c) AS x
		WHERE conversations.ctid = x.t AND conversations.last_seq = x.prev
		RETURNING conversations.id),
	raised AS (UPDATE members SET delivered_seq = GREATEST(delivered_seq, x.s), read_seq = GREATEST(read_seq, x.s)
		FROM (SELECT m.ctid AS t, sd.s FROM sd JOIN up ON up.id = sd.c CROSS JOIN LATERAL (
			SELECT m.ctid FROM members m WHERE m.conversation_id = sd.c AND m.user_id = sd.u LIMIT 1) AS m) AS x
		WHERE members.ctid = x.t
		RETURNING members.conversation_id AS c, members.user_id AS u)
	` + insertMessage + `SELECT v.c, CASE WHEN r.c IS NOT NULL THEN v.seq END, v.s, v.cmid, v.text, v.sent,
		v.kind, v.ref, v.fid, v.fname, v.ftype, v.fsize
	FROM v LEFT JOIN raised AS r ON r.c = v.c AND r.u = v.s`
)

// pipeline counts the batches the two-round-trip path wrote and those it
// passed to the locking path, for the tests and the benchmarks' notes.
type pipeline struct {
	written, passed atomic.Int64
	beforeWrite     func() // tests: runs between the two round trips
}

// errPipelineMissed: the batch needs the locking path.
var errPipelineMissed = errors.New("batch needs the locking path")

// appendPipelined runs reqs on the two-round-trip path. ok is false when
// nothing was written and the batch must run on the locking path.
func (s *Store) appendPipelined(ctx context.Context, reqs []store.AppendRequest) (results []store.AppendResult, ok bool, err error) {
	if len(reqs) > chunkRows {
		return nil, false, nil // the statements take one chunk
	}
	for _, r := range reqs {
		if rules.IsChange(r.Kind) {
			return nil, false, nil
		}
	}
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return nil, false, err
	}
	defer conn.Close()
	b := s.newAppendBatch()
	var ids []string
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		var err error
		if ids, err = b.readPipelined(ctx, pc, reqs); err != nil {
			return err
		}
		prev := make(map[string]int64, len(b.convs))
		for id, st := range b.convs {
			prev[id] = st.lastSeq
		}
		results = make([]store.AppendResult, len(reqs))
		for i, r := range reqs {
			// With everything read, append decides in memory (see
			// pipelineReady): no statement runs here.
			if results[i], err = b.append(ctx, r); err != nil {
				return err
			}
		}
		if s.pipe.beforeWrite != nil {
			s.pipe.beforeWrite()
		}
		return b.writePipelined(ctx, pc, prev)
	})
	var pe *pgconn.PgError
	switch {
	case errors.Is(err, errPipelineMissed), errors.As(err, &pe):
		// A statement failed, so its transaction did not commit: the
		// locking path decides the batch (and reports a real error).
		s.pipe.passed.Add(1)
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("sqlstore: append messages: %w", err)
	}
	s.known.add(ids)
	s.pipe.written.Add(1)
	return results, true, nil
}

// readPipelined runs step 1's reads in one round trip and returns the
// batch's conversations, in id order; errPipelineMissed if the batch
// needs more than they read.
func (b *appendBatch) readPipelined(ctx context.Context, pc *pgx.Conn, reqs []store.AppendRequest) ([]string, error) {
	ids := make([]string, 0, 4)
	var stored, members [][]any
	keys := make(map[memberKey]int64)
	seenKeys := make(map[dupKey]bool)
	for _, r := range reqs {
		ids = append(ids, r.ConversationID)
		if k := (dupKey{r.SenderID, r.ClientMsgID}); k.cmid != "" && !seenKeys[k] {
			seenKeys[k] = true
			stored = append(stored, []any{k.sender, k.cmid})
		}
		if mk := (memberKey{r.ConversationID, r.SenderID}); !hasKey(keys, mk) {
			keys[mk] = r.PeerID
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, mk := range slices.SortedFunc(maps.Keys(keys), compareMemberKeys) {
		members = append(members, []any{mk.conv, mk.user, keys[mk]})
	}
	convRows := make([][]any, len(ids))
	for i, id := range ids {
		convRows[i] = []any{id}
	}

	var batch pgx.Batch
	queue := func(of rowsOf, rows [][]any, query string, scan func(pgx.Rows) error) {
		cte, args := dialectPostgres.rowsCTE(of.head, of.types, rows)
		batch.Queue("WITH "+cte+" "+query, args...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				if err := scan(rows); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	}
	if len(stored) > 0 {
		queue(rowsOf{"k(s, c)", []string{"BIGINT", "TEXT"}}, stored, pgStoredSQL, func(rows pgx.Rows) error {
			var k dupKey
			err := rows.Scan(&k.sender, &k.cmid)
			b.stored[k] = true
			return err
		})
	}
	queue(rowsOf{"k(id)", []string{"TEXT"}}, convRows, pgReadConversationsSQL, func(rows pgx.Rows) error {
		var id string
		st := &convState{}
		err := rows.Scan(&id, &st.lastSeq, &st.updatedAt, &st.kind, &st.mutedUntil)
		b.convs[id] = st
		return err
	})
	for _, m := range members {
		b.members[memberKey{m[0].(string), m[1].(int64)}] = memberState{}
	}
	queue(rowsOf{"k(c, u, p)", []string{"TEXT", "BIGINT", "BIGINT"}}, members, pgLoadMembersSQL, func(rows pgx.Rows) error {
		var mk memberKey
		ms, err := scanMember(rows, &mk.conv, &mk.user)
		b.members[mk] = ms
		return err
	})
	if err := pc.SendBatch(ctx, &batch).Close(); err != nil {
		return nil, err
	}
	if !b.pipelineReady(ids) {
		return nil, errPipelineMissed
	}
	return ids, nil
}

func hasKey[K comparable, V any](m map[K]V, k K) bool {
	_, ok := m[k]
	return ok
}

// pipelineReady reports whether append can decide every request of the
// batch from what step 1 read, without a statement: no client id stored
// before (its original would be read), every conversation there (none to
// create or lock late), every sender a current member (a private chat
// may need creating, a refusal its users' existence checked).
func (b *appendBatch) pipelineReady(ids []string) bool {
	if len(b.stored) > 0 {
		return false
	}
	for _, id := range ids {
		if b.convs[id] == nil {
			return false
		}
	}
	for _, ms := range b.members {
		if !ms.current {
			return false
		}
	}
	return true
}

// writePipelined is step 2's statement. It commits by itself: sent alone,
// it is its own transaction.
func (b *appendBatch) writePipelined(ctx context.Context, pc *pgx.Conn, prev map[string]int64) error {
	if len(b.queued) == 0 {
		return nil // every request refused or answered: nothing to write
	}
	var convs [][]any
	for _, id := range slices.Sorted(maps.Keys(b.convs)) {
		if st := b.convs[id]; st.dirty {
			convs = append(convs, []any{id, prev[id], st.lastSeq, st.updatedAt})
		}
	}
	var senders [][]any
	for _, k := range slices.SortedFunc(maps.Keys(b.senderSeq), compareMemberKeys) {
		senders = append(senders, []any{k.conv, k.user, b.senderSeq[k]})
	}
	args := slices.Concat(columns(b.queued, len(queuedRows.types)), columns(convs, 4), columns(senders, 3))
	tag, err := pc.Exec(ctx, pgWriteBatchSQL, args...)
	if err != nil {
		return err
	}
	if int(tag.RowsAffected()) != len(b.queued) {
		// Every row of v is inserted or the statement fails; this would
		// be a committed batch answered as failed, never run again.
		return fmt.Errorf("inserted %d of %d messages", tag.RowsAffected(), len(b.queued))
	}
	return nil
}

// columns turns rows of n values into n arrays, one per column, for
// unnest().
func columns(rows [][]any, n int) []any {
	cols := make([]any, n)
	for j := range cols {
		col := make([]any, len(rows))
		for i, r := range rows {
			col[i] = r[j]
		}
		cols[j] = col
	}
	return cols
}
