package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/magpie-im/magpie/internal/store"
)

// Messages pages through the user's window of the conversation: after
// joined_seq and up to left_seq for a member who left.
func (s *Store) Messages(ctx context.Context, userID int64, q store.MessageQuery) ([]store.Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = 100
	case limit > 500:
		limit = 500
	}
	// One snapshot for the windows and the rows: a leave committed between
	// the window's statement and the rows' must not let a former member's
	// device get the messages after it (the fault run's scenario 11). The
	// snapshot costs a BEGIN and a COMMIT per page, where checking each row
	// again against members and member_windows cost two index probes a row.
	tx, err := s.read.BeginTx(ctx, s.d.snapshotRead())
	if err != nil {
		return nil, fmt.Errorf("sqlstore: messages: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep or undo
	var joined int64
	var left sql.NullInt64
	var cleared int64
	err = tx.QueryRowContext(ctx, `SELECT joined_seq, left_seq, cleared_seq FROM members
		WHERE conversation_id = $1 AND user_id = $2`, q.ConversationID, userID).Scan(&joined, &left, &cleared)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("conversation %q: %w", q.ConversationID, store.ErrNotMember)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: messages: %w", err)
	}

	// The windows this user may read: earlier stays (for a member who left
	// and came back), then the current or last one.
	type window struct{ lo, hi int64 } // (lo, hi]
	var wins []window
	rows, err := tx.QueryContext(ctx, `SELECT from_seq, to_seq FROM member_windows
		WHERE conversation_id = $1 AND user_id = $2 ORDER BY from_seq`, q.ConversationID, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: messages: %w", err)
	}
	for rows.Next() {
		var w window
		if err := rows.Scan(&w.lo, &w.hi); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlstore: messages: %w", err)
		}
		wins = append(wins, w)
	}
	rows.Close()
	cur := window{lo: joined, hi: math.MaxInt64}
	if left.Valid {
		cur.hi = left.Int64
	}
	wins = append(wins, cur)

	order := "ASC"
	// A cleared history starts after the clear point, in every window.
	after, before := max(clampSeq(q.AfterSeq), cleared), int64(math.MaxInt64)
	if q.BeforeSeq > 0 {
		before = clampSeq(q.BeforeSeq) - 1
		order = "DESC" // the latest ones before BeforeSeq, reversed below
		slices.Reverse(wins)
	}
	out := make([]store.Message, 0, min(limit, 64))
	for _, w := range wins {
		lo, hi := max(w.lo, after), min(w.hi, before)
		if lo >= hi || len(out) >= limit {
			continue
		}
		page, err := messageRange(ctx, tx, q.ConversationID, lo, hi, order, limit-len(out))
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
	}
	if order == "DESC" {
		slices.Reverse(out)
	}
	return out, nil
}

// messageRange reads messages with lo < seq <= hi in the given order, in
// the snapshot the windows were read in.
func messageRange(ctx context.Context, tx *sql.Tx, conv string, lo, hi int64, order string, limit int) ([]store.Message, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+msgCols+`
		FROM messages m JOIN users su ON su.id = m.sender_id
		WHERE m.conversation_id = $1 AND m.seq > $2 AND m.seq <= $3
		ORDER BY m.seq `+order+` LIMIT $4`, conv, lo, hi, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: messages: %w", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var x msgRow
		if err := rows.Scan(x.dests()...); err != nil {
			return nil, fmt.Errorf("sqlstore: messages: %w", err)
		}
		m, err := x.message(conv)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: messages: %w", err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: messages: %w", err)
	}
	return out, nil
}

// clampSeq keeps a caller's uint64 inside BIGINT.
func clampSeq(seq uint64) int64 { return int64(min(seq, math.MaxInt64)) }

// conversationsQuery returns the user's current conversations with the
// last message and, for private chats, the other member, in one query.
const conversationsQuery = `SELECT c.id, c.kind, c.last_seq, c.updated_at, me.delivered_seq, me.read_seq,
	c.name, me.pinned, me.muted, me.cleared_seq,
	p.user_id, pu.username, p.delivered_seq, p.read_seq,
	` + msgCols + `
FROM members me
JOIN conversations c ON c.id = me.conversation_id
LEFT JOIN members p ON c.kind = 'private' AND p.conversation_id = c.id AND p.user_id <> me.user_id
LEFT JOIN users pu ON pu.id = p.user_id
LEFT JOIN messages m ON m.conversation_id = c.id AND m.seq = c.last_seq
LEFT JOIN users su ON su.id = m.sender_id
WHERE me.user_id = $1 AND me.left_seq IS NULL`

func (s *Store) Conversations(ctx context.Context, userID int64) ([]store.Conversation, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	// A hidden conversation comes back with the first message after it was hidden.
	cs, err := s.queryConversations(ctx, userID, conversationsQuery+` AND (me.hidden_seq IS NULL OR c.last_seq > me.hidden_seq)
		ORDER BY c.updated_at DESC, c.last_seq DESC, c.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: conversations: %w", err)
	}
	return cs, nil
}

func (s *Store) Conversation(ctx context.Context, userID int64, conversationID string) (store.Conversation, error) {
	if err := s.check(); err != nil {
		return store.Conversation{}, err
	}
	cs, err := s.queryConversations(ctx, userID, conversationsQuery+` AND c.id = $2`, userID, conversationID)
	if err != nil {
		return store.Conversation{}, fmt.Errorf("sqlstore: conversation: %w", err)
	}
	if len(cs) == 0 {
		return store.Conversation{}, fmt.Errorf("conversation %q: %w", conversationID, store.ErrNotMember)
	}
	return cs[0], nil
}

func (s *Store) queryConversations(ctx context.Context, userID int64, query string, args ...any) ([]store.Conversation, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Conversation{}
	selfChats := false
	for rows.Next() {
		var (
			c                     store.Conversation
			kind                  string
			lastSeq, updated      int64
			delivered, read       int64
			cleared               int64
			peerID                sql.NullInt64
			peerName              sql.NullString
			peerDelivered, peerRd sql.NullInt64
			last                  msgRow
		)
		dests := append([]any{&c.ID, &kind, &lastSeq, &updated, &delivered, &read, &c.Name, &c.Pinned, &c.Muted, &cleared,
			&peerID, &peerName, &peerDelivered, &peerRd}, last.dests()...)
		if err := rows.Scan(dests...); err != nil {
			return nil, err
		}
		c.Kind = store.ConversationKind(kind)
		c.LastSeq, c.UpdatedAt = uint64(lastSeq), timeOf(updated)
		c.DeliveredSeq, c.ReadSeq, c.ClearedSeq = uint64(delivered), uint64(read), uint64(cleared)
		if c.Kind == store.Private {
			if peerID.Valid {
				c.PeerID, c.Peer = peerID.Int64, peerName.String
				c.PeerDeliveredSeq, c.PeerReadSeq = uint64(peerDelivered.Int64), uint64(peerRd.Int64)
			} else {
				// A chat with oneself: the peer is the user.
				c.PeerID, c.PeerDeliveredSeq, c.PeerReadSeq = userID, c.DeliveredSeq, c.ReadSeq
				selfChats = true
			}
		}
		m, err := last.message(c.ID)
		if err != nil {
			return nil, err
		}
		if m != nil && m.Seq > c.ClearedSeq {
			c.LastMessage = m // a cleared one is not shown
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if selfChats {
		var name string
		if err := s.read.QueryRowContext(ctx, `SELECT username FROM users WHERE id = $1`, userID).Scan(&name); err != nil {
			return nil, err
		}
		for i := range out {
			if out[i].Kind == store.Private && out[i].PeerID == userID {
				out[i].Peer = name
			}
		}
	}
	return out, nil
}

func (s *Store) Members(ctx context.Context, conversationID string) ([]int64, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT c.id, m.user_id FROM conversations c
		LEFT JOIN members m ON m.conversation_id = c.id AND m.left_seq IS NULL
		WHERE c.id = $1 ORDER BY m.user_id`, conversationID)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: members: %w", err)
	}
	defer rows.Close()
	found := false
	ids := []int64{}
	for rows.Next() {
		var id string
		var user sql.NullInt64
		if err := rows.Scan(&id, &user); err != nil {
			return nil, fmt.Errorf("sqlstore: members: %w", err)
		}
		found = true
		if user.Valid {
			ids = append(ids, user.Int64)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: members: %w", err)
	}
	if !found {
		return nil, fmt.Errorf("conversation %q: %w", conversationID, store.ErrNotFound)
	}
	return ids, nil
}

// MoveCursor is MoveCursors with one move.
func (s *Store) MoveCursor(ctx context.Context, userID int64, conversationID string, kind store.CursorKind, seq uint64) (store.Cursors, error) {
	res, err := s.MoveCursors(ctx, []store.CursorMove{{UserID: userID, ConversationID: conversationID, Kind: kind, Seq: seq}})
	if err != nil {
		return store.Cursors{}, err
	}
	if res[0].Err != nil {
		return store.Cursors{}, res[0].Err
	}
	return res[0].Cursors, nil
}

func (s *Store) HideConversation(ctx context.Context, userID int64, conversationID string, clear bool) (uint64, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	// One statement: the seq it hides at is the last one committed when it
	// runs; a message committed after it shows the conversation again.
	var seq int64
	err := s.write.QueryRowContext(ctx, `UPDATE members
		SET hidden_seq = (SELECT c.last_seq FROM conversations c WHERE c.id = $1),
			cleared_seq = CASE WHEN $3 THEN (SELECT c.last_seq FROM conversations c WHERE c.id = $1) ELSE cleared_seq END
		WHERE conversation_id = $1 AND user_id = $2 AND left_seq IS NULL
		RETURNING hidden_seq`, conversationID, userID, clear).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("conversation %q: %w", conversationID, store.ErrNotMember)
	}
	if err != nil {
		return 0, wrapErr("hide conversation", err)
	}
	return uint64(seq), nil
}
