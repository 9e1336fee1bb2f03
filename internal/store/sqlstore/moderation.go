package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// Moderation (store.Moderation): what an app's admins do to its users and
// messages, each in one transaction.

func (s *Store) SetUserDisabled(ctx context.Context, userID int64, disabled bool, at time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		stamp := int64(0)
		if disabled {
			stamp = max(millis(at), 1)
		}
		res, err := tx.ExecContext(ctx, `UPDATE users SET disabled_at = $1 WHERE id = $2 AND deleted_at = 0`, stamp, userID)
		if err := oneRow(res, err, fmt.Sprintf("user %d", userID)); err != nil {
			return err
		}
		if disabled {
			_, err = tx.ExecContext(ctx, `UPDATE sessions SET revoked = $1 WHERE user_id = $2`, true, userID)
		}
		return err
	})
	if err != nil {
		return wrapErr("set user disabled", err)
	}
	return nil
}

// removedEvent is the event column of a removed message.
var removedEvent = func() string {
	b, _ := json.Marshal(store.Event{Type: store.RemovedByAdmin})
	return string(b)
}()

// blankSQL blanks messages as a recall does, marked as removed by an admin.
const blankSQL = `UPDATE messages SET recalled = $1, text = '', file_id = NULL, file_name = '', file_type = '', file_size = 0, event = $2`

func (s *Store) DeleteUser(ctx context.Context, userID int64, erase bool, at time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	ms := max(millis(at), 1)
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET username_lower = $1, password_hash = '', deleted_at = $2,
			disabled_at = CASE WHEN disabled_at = 0 THEN $2 ELSE disabled_at END
			WHERE id = $3 AND deleted_at = 0`, "deleted:"+strconv.FormatInt(userID, 10), ms, userID)
		if err := oneRow(res, err, fmt.Sprintf("user %d", userID)); err != nil {
			return err
		}
		if err := unfriendAll(ctx, tx, userID); err != nil {
			return err
		}
		for _, q := range []string{
			`UPDATE sessions SET revoked = $2 WHERE user_id = $1`,
			`DELETE FROM friends WHERE user_id = $1 OR friend_id = $1`,
			`DELETE FROM friend_requests WHERE from_id = $1 OR to_id = $1`,
			`DELETE FROM blocks WHERE user_id = $1 OR blocked_id = $1`,
		} {
			args := []any{userID}
			if strings.Contains(q, "$2") {
				args = append(args, true)
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return err
			}
		}
		if erase {
			_, err = tx.ExecContext(ctx, blankSQL+` WHERE sender_id = $3 AND kind IN ($4, $5, $6)`,
				true, removedEvent, userID, int(store.KindText), int(store.KindFile), int(store.KindEdit))
		}
		return err
	})
	if err != nil {
		return wrapErr("delete user", err)
	}
	return nil
}

func (s *Store) ListUsers(ctx context.Context, appID int64, q store.UserQuery) ([]store.User, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	where := `app_id = $1 AND deleted_at = 0 AND id > $2`
	args := []any{appOrDefault(appID), q.AfterID}
	if q.Match != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(q.Match)) + "%"
		where += ` AND (LOWER(username) LIKE $3 ESCAPE '\' OR LOWER(display_name) LIKE $3 ESCAPE '\')`
		args = append(args, like)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE `+where+` ORDER BY id LIMIT `+strconv.Itoa(limit), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: list users: %w", err)
	}
	defer rows.Close()
	var out []store.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: list users: %w", err)
	}
	return out, nil
}

func (s *Store) RemoveMessage(ctx context.Context, conversationID string, seq uint64, at time.Time) (store.Message, error) {
	if err := s.check(); err != nil {
		return store.Message{}, err
	}
	ms := max(millis(at), 1)
	var recall store.Message
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT last_seq FROM conversations WHERE id = $1`+s.d.forUpdate(), conversationID).Scan(&last)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("conversation %q: %w", conversationID, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		var sender, kind int64
		var recalled bool
		err = tx.QueryRowContext(ctx, `SELECT sender_id, kind, recalled FROM messages WHERE conversation_id = $1 AND seq = $2`,
			conversationID, int64(seq)).Scan(&sender, &kind, &recalled)
		if errors.Is(err, sql.ErrNoRows) || err == nil && (recalled || kind != int64(store.KindText) && kind != int64(store.KindFile)) {
			return fmt.Errorf("message %d of %q (or a text or file message not recalled): %w", seq, conversationID, store.ErrNotFound)
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, blankSQL+` WHERE conversation_id = $3 AND (seq = $4 OR (ref_seq = $4 AND kind = $5))`,
			true, removedEvent, conversationID, int64(seq), int(store.KindEdit)); err != nil {
			return err
		}
		next := last + 1
		if _, err := tx.ExecContext(ctx, `INSERT INTO messages(conversation_id, seq, sender_id, text, sent_at, kind, ref_seq, event)
			VALUES ($1, $2, $3, '', $4, $5, $6, $7)`, conversationID, next, sender, ms, int(store.KindRecall), int64(seq), removedEvent); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET last_seq = $1, updated_at = $2 WHERE id = $3`, next, ms, conversationID); err != nil {
			return err
		}
		var name string
		if err := tx.QueryRowContext(ctx, `SELECT username FROM users WHERE id = $1`, sender).Scan(&name); err != nil {
			return err
		}
		recall = store.Message{ConversationID: conversationID, Seq: uint64(next), SenderID: sender, Sender: name,
			SentAt: timeOf(ms), Kind: store.KindRecall, RefSeq: seq, Event: &store.Event{Type: store.RemovedByAdmin}}
		return nil
	})
	if err != nil {
		return store.Message{}, wrapErr("remove message", err)
	}
	return recall, nil
}

// unfriendAll ends the friendships of a user being deleted on the other
// side, so that each friend's sync lists the end.
func unfriendAll(ctx context.Context, tx *sql.Tx, userID int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT friend_id FROM friends WHERE user_id = $1`, userID)
	if err != nil {
		return err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := unfriend(ctx, tx, id, userID); err != nil {
			return err
		}
	}
	return nil
}
