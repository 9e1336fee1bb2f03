package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// MQTT persistent sessions (store.DeviceSessions): device_sessions holds
// one row per session with its expiry, device_cursors the device's
// position per conversation. expires_at is 0 (never) while a connection
// (conn) holds the session and set when it ends. A session that expired stays until the
// device connects again or DropExpiredDeviceSessions sweeps it, and counts
// as absent meanwhile.

// StartDeviceSession resumes or (re)starts the device's session.
func (s *Store) StartDeviceSession(ctx context.Context, userID int64, device, conn string, clean bool, now time.Time) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	var present bool
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		ctx := s.inTx(ctx)
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT expires_at FROM device_sessions WHERE user_id = $1 AND device = $2`, userID, device).Scan(&exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			present = false
		case err != nil:
			return err
		default:
			present = !clean && (exp == 0 || exp > now.UnixMilli())
		}
		if present {
			_, err := tx.ExecContext(ctx, `UPDATE device_sessions SET expires_at = 0, conn = $1 WHERE user_id = $2 AND device = $3`, conn, userID, device)
			return err
		}
		if err := dropDeviceSession(ctx, tx, userID, device); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO device_sessions(user_id, device, expires_at, conn) VALUES ($1, $2, 0, $3)`, userID, device, conn); err != nil {
			return err
		}
		// A new session starts where the user's delivered cursors are:
		// what no device of the user got is what it catches up on.
		_, err = tx.ExecContext(ctx, `INSERT INTO device_cursors(user_id, device, conversation_id, delivered_seq)
			SELECT user_id, $1, conversation_id, delivered_seq FROM members WHERE user_id = $2 AND delivered_seq > 0`, device, userID)
		return err
	})
	return present, err
}

func dropDeviceSession(ctx context.Context, tx *sql.Tx, userID int64, device string) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM device_cursors WHERE user_id = $1 AND device = $2`, userID, device); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM device_sessions WHERE user_id = $1 AND device = $2`, userID, device)
	return err
}

// DeviceCursors reads the device's position.
func (s *Store) DeviceCursors(ctx context.Context, userID int64, device string) (map[string]uint64, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT conversation_id, delivered_seq FROM device_cursors WHERE user_id = $1 AND device = $2`, userID, device)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cur := make(map[string]uint64)
	for rows.Next() {
		var c string
		var seq int64
		if err := rows.Scan(&c, &seq); err != nil {
			return nil, err
		}
		cur[c] = uint64(seq)
	}
	return cur, rows.Err()
}

// MoveDeviceCursors applies a batch of acknowledgements in one transaction.
func (s *Store) MoveDeviceCursors(ctx context.Context, moves []store.DeviceCursorMove) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(moves) == 0 {
		return nil
	}
	moves = append([]store.DeviceCursorMove(nil), moves...)
	sort.Slice(moves, func(a, b int) bool { // one lock order for concurrent batches
		ma, mb := moves[a], moves[b]
		if ma.UserID != mb.UserID {
			return ma.UserID < mb.UserID
		}
		if ma.Device != mb.Device {
			return ma.Device < mb.Device
		}
		return ma.ConversationID < mb.ConversationID
	})
	greatest := "MAX" // SQLite's two-argument MAX is PostgreSQL's GREATEST
	if s.d == dialectPostgres {
		greatest = "GREATEST"
	}
	upsert := `INSERT INTO device_cursors(user_id, device, conversation_id, delivered_seq)
		SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM device_sessions WHERE user_id = $1 AND device = $2)
		ON CONFLICT (user_id, device, conversation_id) DO UPDATE SET delivered_seq = ` + greatest + `(device_cursors.delivered_seq, excluded.delivered_seq)`
	return s.inWriteTx(ctx, func(tx *sql.Tx) error {
		ctx := s.inTx(ctx)
		ins, err := tx.PrepareContext(ctx, upsert)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, m := range moves {
			if _, err := ins.ExecContext(ctx, m.UserID, m.Device, m.ConversationID, int64(m.Seq)); err != nil {
				return err
			}
		}
		return nil
	})
}

// EndDeviceSessions starts the expiry of the sessions whose connection ended.
func (s *Store) EndDeviceSessions(ctx context.Context, ends []store.DeviceSessionEnd) error {
	if err := s.check(); err != nil {
		return err
	}
	if len(ends) == 0 {
		return nil
	}
	ends = append([]store.DeviceSessionEnd(nil), ends...)
	sort.Slice(ends, func(a, b int) bool {
		if ends[a].UserID != ends[b].UserID {
			return ends[a].UserID < ends[b].UserID
		}
		return ends[a].Device < ends[b].Device
	})
	return s.inWriteTx(ctx, func(tx *sql.Tx) error {
		ctx := s.inTx(ctx)
		for _, e := range ends {
			if _, err := tx.ExecContext(ctx, `UPDATE device_sessions SET expires_at = $1 WHERE user_id = $2 AND device = $3 AND conn = $4`,
				millis(e.ExpiresAt), e.UserID, e.Device, e.Conn); err != nil {
				return err
			}
		}
		return nil
	})
}

// DropDeviceSession ends the device's session. Every clean MQTT connect
// calls it and nearly none has a session: a read first keeps those off
// the write lock, which SQLite's message appends hold most of the time.
func (s *Store) DropDeviceSession(ctx context.Context, userID int64, device string) error {
	if err := s.check(); err != nil {
		return err
	}
	var n int
	if err := s.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM device_sessions WHERE user_id = $1 AND device = $2`, userID, device).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return s.inWriteTx(ctx, func(tx *sql.Tx) error { return dropDeviceSession(s.inTx(ctx), tx, userID, device) })
}

// DropExpiredDeviceSessions sweeps the sessions expired by now.
func (s *Store) DropExpiredDeviceSessions(ctx context.Context, now time.Time) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	var n int64
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		ctx := s.inTx(ctx)
		const expired = `SELECT user_id, device FROM device_sessions WHERE expires_at > 0 AND expires_at <= $1`
		if _, err := tx.ExecContext(ctx, `DELETE FROM device_cursors WHERE (user_id, device) IN (`+expired+`)`, now.UnixMilli()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM device_sessions WHERE expires_at > 0 AND expires_at <= $1`, now.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
