package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// MoveCursors applies a batch of cursor moves in one write transaction:
// delivered receipts arrive for nearly every message, and a transaction
// (and fsync) each would cost more than the messages themselves.
func (s *Store) MoveCursors(ctx context.Context, moves []store.CursorMove) ([]store.CursorResult, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.d == dialectPostgres && len(moves) > 0 {
		return s.moveCursorsPG(ctx, moves)
	}
	var results []store.CursorResult
	var start, end hotStamp // the hot cache's, which cursor moves leave valid
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		ctx := s.inTx(ctx)
		if s.hc != nil {
			var err error
			if start, err = s.hc.read(ctx, tx); err != nil {
				return err
			}
		}
		var err error
		if results, err = s.moveAll(ctx, tx, moves); err != nil || s.hc == nil {
			return err
		}
		end, err = s.hc.readEnd(ctx, tx, start)
		return err
	})
	if err != nil {
		if s.hc != nil {
			s.hc.drop()
		}
		return nil, err
	}
	if s.hc != nil {
		s.hc.moved(start, end)
	}
	return results, nil
}

// moveAll applies moves in tx, taking member rows in one order so that
// concurrent batches cannot deadlock.
func (s *Store) moveAll(ctx context.Context, tx *sql.Tx, moves []store.CursorMove) ([]store.CursorResult, error) {
	order := make([]int, len(moves))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ma, mb := moves[order[a]], moves[order[b]]
		if ma.ConversationID != mb.ConversationID {
			return ma.ConversationID < mb.ConversationID
		}
		return ma.UserID < mb.UserID
	})
	results := make([]store.CursorResult, len(moves))
	get, set := tx.StmtContext(ctx, s.hot.cursorGet), tx.StmtContext(ctx, s.hot.cursorSet)
	for _, i := range order {
		m := moves[i]
		cur, err := s.moveCursorTx(ctx, get, set, m.UserID, m.ConversationID, m.Kind, m.Seq)
		if err != nil && !errors.Is(err, store.ErrNotMember) && !errors.Is(err, store.ErrSeqOutOfRange) {
			return nil, err
		}
		results[i] = store.CursorResult{Cursors: cur, Err: err}
	}
	return results, nil
}

// moveCursorTx moves one cursor with the transaction's statements;
// ErrNotMember and ErrSeqOutOfRange leave the transaction usable.
func (s *Store) moveCursorTx(ctx context.Context, get, set *sql.Stmt, userID int64, conversationID string, kind store.CursorKind, seq uint64) (store.Cursors, error) {
	cur := store.Cursors{ConversationID: conversationID, UserID: userID}
	if kind != store.Delivered && kind != store.Read {
		return cur, fmt.Errorf("sqlstore: move cursor: unknown cursor kind %d", kind)
	}
	var delivered, read, last int64
	err := get.QueryRowContext(ctx, conversationID, userID).Scan(&delivered, &read, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return cur, fmt.Errorf("conversation %q: %w", conversationID, store.ErrNotMember)
	}
	if err != nil {
		return cur, fmt.Errorf("sqlstore: move cursor: %w", err)
	}
	cur.LastSeq = uint64(last)
	moved, refusal := rules.MoveCursor(rules.Cursors{Delivered: uint64(delivered), Read: uint64(read), Last: cur.LastSeq}, kind, seq)
	if refusal != nil {
		return cur, refusal
	}
	newDelivered, newRead := int64(moved.Delivered), int64(moved.Read)
	cur.DeliveredSeq, cur.ReadSeq = moved.Delivered, moved.Read
	cur.Moved = newDelivered != delivered || newRead != read
	if !cur.Moved {
		return cur, nil
	}
	if _, err := set.ExecContext(ctx, newDelivered, newRead, conversationID, userID); err != nil {
		return cur, fmt.Errorf("sqlstore: move cursor: %w", err)
	}
	return cur, nil
}
