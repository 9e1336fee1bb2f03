package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

const scheduledCols = `id, user_id, to_user, to_group, text, file_id, client_msg_id, send_at, created_at, refused_at, refused_code, refused_reason`

func scanScheduled(rows interface{ Scan(...any) error }) (store.ScheduledMessage, error) {
	var m store.ScheduledMessage
	var sendAt, created, refused, code int64
	err := rows.Scan(&m.ID, &m.UserID, &m.ToUser, &m.ToGroup, &m.Text, &m.FileID, &m.ClientMsgID, &sendAt, &created, &refused, &code, &m.RefusedReason)
	m.SendAt, m.CreatedAt, m.RefusedCode = timeOf(sendAt), timeOf(created), uint32(code)
	if refused != 0 {
		m.RefusedAt = timeOf(refused)
	}
	return m, err
}

func (s *Store) Schedule(ctx context.Context, m store.ScheduledMessage) (store.ScheduledMessage, bool, error) {
	if err := s.check(); err != nil {
		return store.ScheduledMessage{}, false, err
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	insert := func() error {
		return s.write.QueryRowContext(ctx, `INSERT INTO scheduled_messages(user_id, to_user, to_group, text, file_id, client_msg_id, send_at, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			m.UserID, m.ToUser, m.ToGroup, m.Text, m.FileID, m.ClientMsgID, millis(m.SendAt), millis(m.CreatedAt)).Scan(&m.ID)
	}
	err := insert()
	if s.d.isUniqueViolation(err) {
		old, rerr := scanScheduled(s.write.QueryRowContext(ctx, `SELECT `+scheduledCols+` FROM scheduled_messages
			WHERE user_id = $1 AND client_msg_id = $2`, m.UserID, m.ClientMsgID))
		if rerr != nil {
			return store.ScheduledMessage{}, false, wrapErr("schedule", rerr)
		}
		if !old.Refused() {
			return old, true, nil
		}
		// A refused one was never sent: its id is free for a new message.
		if _, derr := s.write.ExecContext(ctx, `DELETE FROM scheduled_messages WHERE id = $1 AND refused_at <> 0`, old.ID); derr != nil {
			return store.ScheduledMessage{}, false, wrapErr("schedule", derr)
		}
		err = insert()
	}
	if err != nil {
		return store.ScheduledMessage{}, false, wrapErr("schedule", err)
	}
	m.SendAt, m.CreatedAt = timeOf(millis(m.SendAt)), timeOf(millis(m.CreatedAt))
	return m, false, nil
}

func (s *Store) ScheduledMessages(ctx context.Context, userID int64) ([]store.ScheduledMessage, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+scheduledCols+` FROM scheduled_messages
		WHERE user_id = $1 ORDER BY send_at, id`, userID)
	if err != nil {
		return nil, wrapErr("scheduled messages", err)
	}
	return collectScheduled(rows)
}

func collectScheduled(rows *sql.Rows) ([]store.ScheduledMessage, error) {
	defer rows.Close()
	out := []store.ScheduledMessage{}
	for rows.Next() {
		m, err := scanScheduled(rows)
		if err != nil {
			return nil, wrapErr("scheduled messages", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("scheduled messages", err)
	}
	return out, nil
}

func (s *Store) CancelScheduled(ctx context.Context, userID, id int64) error {
	if err := s.check(); err != nil {
		return err
	}
	now := nowMillis()
	res, err := s.write.ExecContext(ctx, `DELETE FROM scheduled_messages WHERE id = $1 AND user_id = $2 AND claimed_until < $3`, id, userID, now)
	if err != nil {
		return wrapErr("cancel scheduled", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrapErr("cancel scheduled", err)
	} else if n == 1 {
		return nil
	}
	var claimed int64
	err = s.write.QueryRowContext(ctx, `SELECT claimed_until FROM scheduled_messages WHERE id = $1 AND user_id = $2`, id, userID).Scan(&claimed)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("scheduled message %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return wrapErr("cancel scheduled", err)
	}
	return fmt.Errorf("scheduled message %d is being sent: %w", id, store.ErrExists)
}

// ClaimDue: on PostgreSQL two nodes may pick the same ids in the
// subquery; the second UPDATE waits for the first's row lock and then
// finds claimed_until moved, so only one claim wins each row.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]store.ScheduledMessage, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	at := millis(now)
	rows, err := s.write.QueryContext(ctx, `UPDATE scheduled_messages SET claimed_until = $2
		WHERE id IN (SELECT id FROM scheduled_messages WHERE refused_at = 0 AND send_at <= $1 AND claimed_until < $1 ORDER BY send_at, id LIMIT $3)
		AND claimed_until < $1 AND refused_at = 0
		RETURNING `+scheduledCols, at, at+lease.Milliseconds(), limit)
	if err != nil {
		return nil, wrapErr("claim scheduled", err)
	}
	out, err := collectScheduled(rows)
	if err != nil {
		return nil, err
	}
	// RETURNING gives no order.
	sortScheduled(out)
	return out, nil
}

func sortScheduled(ms []store.ScheduledMessage) {
	for i := 1; i < len(ms); i++ {
		for j := i; j > 0 && (ms[j].SendAt.Before(ms[j-1].SendAt) || ms[j].SendAt.Equal(ms[j-1].SendAt) && ms[j].ID < ms[j-1].ID); j-- {
			ms[j], ms[j-1] = ms[j-1], ms[j]
		}
	}
}

func (s *Store) DoneScheduled(ctx context.Context, id int64) error {
	if err := s.check(); err != nil {
		return err
	}
	if _, err := s.write.ExecContext(ctx, `DELETE FROM scheduled_messages WHERE id = $1`, id); err != nil {
		return wrapErr("done scheduled", err)
	}
	return nil
}

func (s *Store) RefuseScheduled(ctx context.Context, id int64, at time.Time, code uint32, reason string) error {
	if err := s.check(); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, `UPDATE scheduled_messages SET refused_at = $2, refused_code = $3, refused_reason = $4, claimed_until = 0
		WHERE id = $1 AND refused_at = 0`, id, max(millis(at), 1), int64(code), reason)
	if err != nil {
		return wrapErr("refuse scheduled", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return wrapErr("refuse scheduled", err)
	} else if n == 0 {
		return fmt.Errorf("pending scheduled message %d: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) PurgeRefused(ctx context.Context, before time.Time) (int, error) {
	if err := s.check(); err != nil {
		return 0, err
	}
	res, err := s.write.ExecContext(ctx, `DELETE FROM scheduled_messages WHERE refused_at <> 0 AND refused_at < $1`, millis(before))
	if err != nil {
		return 0, wrapErr("purge refused", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrapErr("purge refused", err)
	}
	return int(n), nil
}
