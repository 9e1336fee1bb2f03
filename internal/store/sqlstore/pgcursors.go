package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// moveCursorsPG is MoveCursors on PostgreSQL: one statement, so one round
// trip, and its row locks last only while the server runs it (it commits
// on its own). Row by row, a batch held its locks across two round trips
// per move, and appends waiting on a sender's row waited for all of them.
//
// The statement locks the members' rows in the order of its key arrays
// (sorted here, the order appends lock them in), returns each one's
// cursors and its conversation's last seq as they were, and raises the
// cursors to the highest valid seq of the batch's moves. The moves are
// then replayed here, in their order, with rules.MoveCursor, from those
// values: cursors only go up and a move beyond the last seq is refused, so
// the replay ends where the statement's GREATEST did, and gives each move
// its own result.
func (s *Store) moveCursorsPG(ctx context.Context, moves []store.CursorMove) ([]store.CursorResult, error) {
	var convs, kinds []string
	var users, seqs []int64
	keys := make(map[memberKey]bool)
	for _, m := range moves {
		if m.Kind != store.Delivered && m.Kind != store.Read {
			return nil, fmt.Errorf("sqlstore: move cursor: unknown cursor kind %d", m.Kind)
		}
		kind := "d"
		if m.Kind == store.Read {
			kind = "r"
		}
		convs, users, kinds, seqs = append(convs, m.ConversationID), append(users, m.UserID), append(kinds, kind), append(seqs, clampSeq(m.Seq))
		keys[memberKey{m.ConversationID, m.UserID}] = true
	}
	sorted := slices.SortedFunc(maps.Keys(keys), compareMemberKeys)
	keyConvs, keyUsers := make([]string, len(sorted)), make([]int64, len(sorted))
	for i, k := range sorted {
		keyConvs[i], keyUsers[i] = k.conv, k.user
	}
	const maxAttempts = 8
	for attempt := 1; ; attempt++ {
		before, err := s.raiseCursors(ctx, convs, users, kinds, seqs, keyConvs, keyUsers)
		if err == nil {
			res, complete := replayCursorMoves(moves, before)
			if complete {
				return res, nil
			}
			// A row changed by another transaction while this statement
			// waited for its lock was locked at a version its snapshot
			// cannot see, so the update skipped it: run the batch again.
			err = errCursorRace
		}
		if attempt == maxAttempts || !(errors.Is(err, errCursorRace) || s.d.isRetryable(err)) {
			return nil, fmt.Errorf("sqlstore: move cursors: %w", err)
		}
	}
}

var errCursorRace = errors.New("a cursor moved concurrently")

// cursorRow is a member's cursors before the statement, and whether the
// statement raised them.
type cursorRow struct {
	delivered, read, last int64
	raised                bool
}

// moveCursorsSQL: $1-$4 the moves (conversation, user, kind 'd' or 'r',
// seq), $5-$6 their distinct members in lock order. Each lookup is a
// LATERAL ... LIMIT 1 on a primary key, so the plan is an index probe per
// row whatever the tables' statistics say (a join over unnest() arrays is
// planned as a hash join over a sequential scan when the planner thinks a
// table small, and a cached generic plan keeps that as the table grows).
//
// The members' rows are first read unlocked, as of the statement's
// snapshot (seen), and only those a move would raise are locked (locked):
// a receipt at or below a member's cursors changes nothing and takes no
// lock. Most receipts of a sender are such (its appends raise its own
// cursors to every seq it sends), and locking its row for them made its
// next append wait for the receipts' commit, fsync included, behind a
// statement that changed nothing. A row not locked answers from the
// snapshot: its cursors only go up, so a move at or below them is a no-op
// at the snapshot's instant. A locked row answers from its locked, newest
// version. The UPDATE finds its rows by the ctid the locking read
// returned. The conversation's last seq is read unlocked, as of the
// statement's start, while a member's locked row may be newer: an append
// that raised the sender's cursors committed while the statement waited.
// Its delivered seq is a lower bound of the last seq, so l is the greater
// of the two. (A receipt's seq was committed before the receipt was sent,
// so the snapshot already holds it.)
const moveCursorsSQL = `WITH v(c, u, k, s) AS (
		SELECT * FROM unnest(CAST($1 AS TEXT[]), CAST($2 AS BIGINT[]), CAST($3 AS TEXT[]), CAST($4 AS BIGINT[]))),
	seen AS (SELECT x.*, EXISTS (SELECT 1 FROM v WHERE v.c = x.c AND v.u = x.u AND v.s <= x.l
			AND (v.s > x.d OR (v.k = 'r' AND v.s > x.r))) AS raise
		FROM unnest(CAST($5 AS TEXT[]), CAST($6 AS BIGINT[])) WITH ORDINALITY AS k(c, u, o)
		CROSS JOIN LATERAL (SELECT k.o, m.conversation_id AS c, m.user_id AS u,
			m.delivered_seq AS d, m.read_seq AS r, GREATEST(cv.last_seq, m.delivered_seq) AS l
			FROM members m JOIN conversations cv ON cv.id = m.conversation_id
			WHERE m.conversation_id = k.c AND m.user_id = k.u AND m.left_seq IS NULL
			LIMIT 1) AS x),
	locked AS (SELECT x.* FROM (SELECT * FROM seen WHERE raise ORDER BY o) AS k
		CROSS JOIN LATERAL (SELECT m.ctid AS t, m.conversation_id AS c, m.user_id AS u,
			m.delivered_seq AS d, m.read_seq AS r, GREATEST(cv.last_seq, m.delivered_seq) AS l
			FROM members m JOIN conversations cv ON cv.id = m.conversation_id
			WHERE m.conversation_id = k.c AND m.user_id = k.u AND m.left_seq IS NULL
			LIMIT 1 FOR UPDATE OF m) AS x),
	cur AS (SELECT * FROM locked
		UNION ALL SELECT NULL::tid, c, u, d, r, l FROM seen WHERE NOT raise),
	target AS (SELECT cur.t, MAX(v.s) AS d, COALESCE(MAX(v.s) FILTER (WHERE v.k = 'r'), 0) AS r
		FROM cur JOIN v ON v.c = cur.c AND v.u = cur.u
		WHERE cur.t IS NOT NULL AND v.s <= cur.l GROUP BY cur.t),
	raised AS (UPDATE members m SET delivered_seq = GREATEST(m.delivered_seq, target.d),
			read_seq = GREATEST(m.read_seq, target.r)
		FROM target WHERE m.ctid = target.t AND (target.d > m.delivered_seq OR target.r > m.read_seq)
		RETURNING m.conversation_id AS c, m.user_id AS u)
	SELECT cur.c, cur.u, cur.d, cur.r, cur.l, raised.c IS NOT NULL
	FROM cur LEFT JOIN raised ON raised.c = cur.c AND raised.u = cur.u`

func (s *Store) raiseCursors(ctx context.Context, convs []string, users []int64, kinds []string, seqs []int64, keyConvs []string, keyUsers []int64) (map[memberKey]cursorRow, error) {
	rows, err := s.write.QueryContext(ctx, moveCursorsSQL, convs, users, kinds, seqs, keyConvs, keyUsers)
	if err != nil {
		return nil, err
	}
	before := make(map[memberKey]cursorRow, len(keyConvs))
	for rows.Next() {
		var k memberKey
		var r cursorRow
		if err := rows.Scan(&k.conv, &k.user, &r.delivered, &r.read, &r.last, &r.raised); err != nil {
			rows.Close()
			return nil, err
		}
		before[k] = r
	}
	return before, errors.Join(rows.Close(), rows.Err())
}

// replayCursorMoves gives each move its result from the cursors before
// the batch; complete is false when a member's cursors should have been
// raised and the statement did not raise them.
func replayCursorMoves(moves []store.CursorMove, before map[memberKey]cursorRow) (res []store.CursorResult, complete bool) {
	now := make(map[memberKey]rules.Cursors, len(before))
	for k, r := range before {
		now[k] = rules.Cursors{Delivered: uint64(r.delivered), Read: uint64(r.read), Last: uint64(r.last)}
	}
	res = make([]store.CursorResult, len(moves))
	for i, m := range moves {
		k := memberKey{m.ConversationID, m.UserID}
		cur := store.Cursors{ConversationID: m.ConversationID, UserID: m.UserID}
		c, member := now[k]
		if !member {
			res[i] = store.CursorResult{Cursors: cur, Err: fmt.Errorf("conversation %q: %w", m.ConversationID, store.ErrNotMember)}
			continue
		}
		cur.LastSeq = c.Last
		moved, refusal := rules.MoveCursor(c, m.Kind, m.Seq)
		if refusal != nil {
			res[i] = store.CursorResult{Cursors: cur, Err: refusal}
			continue
		}
		cur.DeliveredSeq, cur.ReadSeq = moved.Delivered, moved.Read
		cur.Moved = moved != c
		now[k] = moved
		res[i] = store.CursorResult{Cursors: cur}
	}
	for k, r := range before {
		c := now[k]
		if changed := c.Delivered != uint64(r.delivered) || c.Read != uint64(r.read); changed && !r.raised {
			return nil, false
		}
	}
	return res, true
}
