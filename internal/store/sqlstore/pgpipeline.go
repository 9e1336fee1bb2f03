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

// The two-round-trip append on PostgreSQL (one with pghot.go's cache).
// The locking path (messages.go) is BEGIN, four reads, three writes and
// COMMIT: nine round trips, with the conversations' rows locked across
// six of them, and at low rates, where a batch holds one or two messages,
// those round trips are the ACK's latency. This path takes two and holds no lock across either:
//
//  1. one pipeline of three reads, locking nothing: which of the batch's
//     client ids are stored, its conversations (last seq, kind, mute) and
//     its senders' memberships;
//  2. the batch's rules and seqs decided in memory from what was read
//     (appendBatch.append, which then touches no database), and one
//     statement, committed by itself, that writes all of it.
//
// That statement raises each conversation's last seq only where it and
// the conversation's mute still are what step 1 read, raises each sender's
// cursors only where their membership (not left, role, mute) still is,
// the peer does not block them and, where the app requires it, they are
// the peer's friends, and gives a message its seq only if its
// conversation and its sender were both raised; otherwise the seq is
// NULL, the messages' NOT NULL constraint fails the statement, and nothing
// of it is kept. Every change of membership, role or mute also appends an
// event in the transaction that makes it (groupchange.go), which takes the
// seq step 1 would give our first message (the messages' primary key
// refuses it too). Duplicates committed since step 1 fail the client ids'
// unique index the same way. On any such failure, and whenever the batch
// needs more than this path reads (a client id already stored, a
// conversation not yet created, a sender who is not a member, a recall or
// edit), the batch runs on the locking path instead, which decides every
// case. Since the statement checks everything the decision used, step 1
// can be skipped when pghot.go's cache already has it: one round trip.

const (
	// pgReadConversationsSQL is pgLockConversationsSQL without the lock.
	pgReadConversationsSQL = `SELECT c.id, c.last_seq, c.updated_at, c.kind, c.muted_until FROM k CROSS JOIN LATERAL (
		SELECT c.id, c.last_seq, c.updated_at, c.kind, c.muted_until FROM conversations c
		WHERE c.id = k.id LIMIT 1) AS c`

	// pgWriteBatchSQL writes a batch decided on step 1's reads or on the
	// cache's (pghot.go), and checks every one of them the decision used:
	// $1-$12 the message rows (queuedRows); $13-$17 the conversations (id,
	// last seq and mute read, new last seq, updated_at); $18-$24 the
	// senders (conversation, user, highest seq, role and mute read, and
	// for a private chat the peer, 0 otherwise, and whether they must be
	// friends). A conversation is raised only where its last seq and mute
	// are still those read, a sender only where their membership is (not
	// left, same role and mute), the peer does not block them and, where
	// needed, they are the peer's friends; a message gets a seq only if
	// both were raised, so any of these changed fails the statement on
	// NOT NULL. Lookups are LATERAL ... LIMIT 1 probes, for the plans (see
	// pgappend.go); the conversations are updated before their senders,
	// the order of every other writer.
	pgWriteBatchSQL = `WITH v(c, seq, s, cmid, text, sent, kind, ref, fid, fname, ftype, fsize) AS (
		SELECT * FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS BIGINT[]), CAST($3 AS BIGINT[]), CAST($4 AS TEXT[]),
			CAST($5 AS TEXT[]), CAST($6 AS BIGINT[]), CAST($7 AS INTEGER[]), CAST($8 AS BIGINT[]),
			CAST($9 AS TEXT[]), CAST($10 AS TEXT[]), CAST($11 AS TEXT[]), CAST($12 AS BIGINT[]))),
	cv(id, prev, mu, last_seq, updated_at) AS (SELECT * FROM unnest(CAST($13 AS TEXT[]), CAST($14 AS BIGINT[]),
		CAST($15 AS BIGINT[]), CAST($16 AS BIGINT[]), CAST($17 AS BIGINT[]))),
	sd(c, u, s, role, mu, p, rf) AS (SELECT * FROM unnest(CAST($18 AS TEXT[]), CAST($19 AS BIGINT[]),
		CAST($20 AS BIGINT[]), CAST($21 AS TEXT[]), CAST($22 AS BIGINT[]), CAST($23 AS BIGINT[]), CAST($24 AS BOOLEAN[]))),
	up AS (UPDATE conversations SET last_seq = x.last_seq, updated_at = x.updated_at
		FROM (SELECT c.ctid AS t, cv.prev, cv.last_seq, cv.updated_at FROM cv CROSS JOIN LATERAL (
			SELECT c.ctid FROM conversations c WHERE c.id = cv.id AND c.muted_until = cv.mu LIMIT 1) AS c) AS x
		WHERE conversations.ctid = x.t AND conversations.last_seq = x.prev
		RETURNING conversations.id),
	raised AS (UPDATE members SET delivered_seq = GREATEST(delivered_seq, x.s), read_seq = GREATEST(read_seq, x.s)
		FROM (SELECT m.ctid AS t, sd.s FROM sd JOIN up ON up.id = sd.c CROSS JOIN LATERAL (
			SELECT m.ctid FROM members m WHERE m.conversation_id = sd.c AND m.user_id = sd.u
				AND m.left_seq IS NULL AND m.role = sd.role AND m.muted_until = sd.mu LIMIT 1) AS m
			LEFT JOIN LATERAL (SELECT true AS ok FROM friends f
				WHERE sd.rf AND f.user_id = sd.u AND f.friend_id = sd.p LIMIT 1) AS fr ON true
			WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = sd.p AND b.blocked_id = sd.u)
				AND (NOT sd.rf OR fr.ok)) AS x
		WHERE members.ctid = x.t
		RETURNING members.conversation_id AS c, members.user_id AS u)
	` + insertMessage + `SELECT v.c, CASE WHEN r.c IS NOT NULL THEN v.seq END, v.s, v.cmid, v.text, v.sent,
		v.kind, v.ref, v.fid, v.fname, v.ftype, v.fsize
	FROM v LEFT JOIN raised AS r ON r.c = v.c AND r.u = v.s`
)

// pipeline counts the batches the two-round-trip path wrote and those it
// passed to the locking path, and of the written those the cache let skip
// the first round trip (hot) and the cache's misses at the write (stale),
// for the tests and the benchmarks' notes.
type pipeline struct {
	written, passed, hot, stale atomic.Int64
	beforeWrite                 func() // tests: runs before the write statement
	cache                       pgHot
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
	var b *appendBatch
	var ids []string
	var prev map[string]int64
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		// One round trip if the cache knows the batch and lets all of it
		// through; otherwise, or if the write finds the cache stale, two.
		b = s.newAppendBatch()
		var hot bool
		if ids, hot = s.pipe.cache.fill(b, reqs); hot {
			var err error
			if results, prev, err = s.decidePipelined(ctx, b, reqs); err != nil {
				return err
			}
			if allQueued(results) {
				err = b.writePipelined(ctx, pc, prev, reqs)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) {
					if err == nil {
						s.pipe.hot.Add(1)
					}
					return err
				}
				s.pipe.stale.Add(1)
			}
			s.pipe.cache.drop(ids)
			b = s.newAppendBatch()
		}
		var err error
		if ids, err = b.readPipelined(ctx, pc, reqs); err != nil {
			return err
		}
		if results, prev, err = s.decidePipelined(ctx, b, reqs); err != nil {
			return err
		}
		return b.writePipelined(ctx, pc, prev, reqs)
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
	s.pipe.cache.keep(b, reqs, prev)
	return results, true, nil
}

// decidePipelined runs append for every request of b, filled by step 1's
// reads or the cache, and returns the results and each conversation's
// last seq before the batch. With everything read, append decides in
// memory (see pipelineReady): no statement runs here.
func (s *Store) decidePipelined(ctx context.Context, b *appendBatch, reqs []store.AppendRequest) ([]store.AppendResult, map[string]int64, error) {
	prev := make(map[string]int64, len(b.convs))
	for id, st := range b.convs {
		prev[id] = st.lastSeq
	}
	results := make([]store.AppendResult, len(reqs))
	for i, r := range reqs {
		var err error
		if results[i], err = b.append(ctx, r); err != nil {
			return nil, nil, err
		}
	}
	if s.pipe.beforeWrite != nil {
		s.pipe.beforeWrite()
	}
	return results, prev, nil
}

// allQueued reports whether every request was let through: stored, or a
// retry of one stored earlier in the batch.
func allQueued(results []store.AppendResult) bool {
	for _, r := range results {
		if r.Err != nil {
			return false
		}
	}
	return true
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
func (b *appendBatch) writePipelined(ctx context.Context, pc *pgx.Conn, prev map[string]int64, reqs []store.AppendRequest) error {
	if len(b.queued) == 0 {
		return nil // every request refused or answered: nothing to write
	}
	var convs [][]any
	for _, id := range slices.Sorted(maps.Keys(b.convs)) {
		if st := b.convs[id]; st.dirty {
			convs = append(convs, []any{id, prev[id], st.mutedUntil, st.lastSeq, st.updatedAt})
		}
	}
	// The peer each sender's membership was read for (its first
	// request's), and whether any of its requests needs a friendship.
	type pair struct {
		peer   int64
		friend bool
	}
	pairs := make(map[memberKey]pair, len(b.senderSeq))
	for _, r := range reqs {
		mk := memberKey{r.ConversationID, r.SenderID}
		p, ok := pairs[mk]
		if !ok && r.PeerID != r.SenderID {
			p.peer = r.PeerID
		}
		p.friend = p.friend || (r.RequireFriend && p.peer != 0)
		pairs[mk] = p
	}
	var senders [][]any
	for _, k := range slices.SortedFunc(maps.Keys(b.senderSeq), compareMemberKeys) {
		p, ms := pairs[k], b.members[k]
		senders = append(senders, []any{k.conv, k.user, b.senderSeq[k], string(ms.role), ms.mutedUntil, p.peer, p.friend})
	}
	args := slices.Concat(columns(b.queued, len(queuedRows.types)), columns(convs, 5), columns(senders, 7))
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
