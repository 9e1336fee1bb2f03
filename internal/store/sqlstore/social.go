package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// Friendships are stored in both directions and requests in one, so that
// every question the send path or a listing asks is a primary-key read.

func (s *Store) RequestFriend(ctx context.Context, from, to int64, at time.Time) (store.FriendStatus, error) {
	if err := s.check(); err != nil {
		return "", err
	}
	if r := rules.MayBefriend(from, to); r != nil {
		return "", r
	}
	var status store.FriendStatus
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		if n, err := countUsers(ctx, tx, []int64{from, to}); err != nil {
			return err
		} else if n != 2 {
			return fmt.Errorf("user %d: %w", to, store.ErrNotFound)
		}
		var blocked, friends, asked bool
		var policy string
		err := tx.QueryRowContext(ctx, `SELECT
			EXISTS(SELECT 1 FROM blocks WHERE (user_id = $1 AND blocked_id = $2) OR (user_id = $2 AND blocked_id = $1)),
			EXISTS(SELECT 1 FROM friends WHERE user_id = $1 AND friend_id = $2),
			EXISTS(SELECT 1 FROM friend_requests WHERE from_id = $2 AND to_id = $1),
			(SELECT friend_policy FROM users WHERE id = $2)`, from, to).Scan(&blocked, &friends, &asked, &policy)
		if err != nil {
			return err
		}
		outcome, refusal := rules.FriendRequest(blocked, friends, asked, store.FriendPolicy(policy))
		switch {
		case refusal != nil:
			return refusal
		case outcome == rules.AlreadyFriends:
			status = store.FriendsNow
			return nil
		case outcome == rules.AcceptMutual, outcome == rules.AddDirectly:
			status = store.FriendsNow
			return befriend(ctx, tx, from, to, millis(at))
		}
		status = store.FriendRequested
		_, err = tx.ExecContext(ctx, `INSERT INTO friend_requests(from_id, to_id, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (from_id, to_id) DO NOTHING`, from, to, millis(at))
		return err
	})
	if err != nil {
		return "", wrapErr("request friend", err)
	}
	return status, nil
}

// befriend makes a and b friends and drops their requests. Each side's
// row takes that user's next friend seq (a row there already, as an
// import writes one first, keeps its since and gets the seq).
func befriend(ctx context.Context, tx *sql.Tx, a, b, at int64) error {
	if err := dropRequests(ctx, tx, a, b); err != nil {
		return err
	}
	for _, p := range [][2]int64{{a, b}, {b, a}} {
		seq, err := nextFriendSeq(ctx, tx, p[0])
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO friends(user_id, friend_id, since, seq) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id, friend_id) DO UPDATE SET seq = excluded.seq`, p[0], p[1], at, seq); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM friend_removals WHERE user_id = $1 AND friend_id = $2`, p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

// nextFriendSeq takes the user's next friend seq. The UPDATE also locks
// the user's row, so two changes to one user's friends take their seqs
// in commit order.
func nextFriendSeq(ctx context.Context, tx *sql.Tx, user int64) (int64, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `UPDATE users SET friend_seq = friend_seq + 1 WHERE id = $1 RETURNING friend_seq`, user).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user %d: %w", user, store.ErrNotFound)
	}
	return seq, err
}

// unfriend ends user's side of a friendship (if there is one) and keeps
// its end for the user's friend sync.
func unfriend(ctx context.Context, tx *sql.Tx, user, friend int64) (bool, error) {
	res, err := tx.ExecContext(ctx, `DELETE FROM friends WHERE user_id = $1 AND friend_id = $2`, user, friend)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	seq, err := nextFriendSeq(ctx, tx, user)
	if err != nil {
		return false, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO friend_removals(user_id, friend_id, seq) VALUES ($1, $2, $3)
		ON CONFLICT (user_id, friend_id) DO UPDATE SET seq = excluded.seq`, user, friend, seq)
	return true, err
}

func dropRequests(ctx context.Context, tx *sql.Tx, a, b int64) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM friend_requests WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)`, a, b)
	return err
}

func (s *Store) AcceptFriend(ctx context.Context, userID, requester int64, at time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM friend_requests WHERE from_id = $1 AND to_id = $2`,
			requester, userID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("friend request from %d: %w", requester, store.ErrNotFound)
		}
		return befriend(ctx, tx, userID, requester, millis(at))
	})
	if err != nil {
		return wrapErr("accept friend", err)
	}
	return nil
}

func (s *Store) DeclineFriend(ctx context.Context, userID, requester int64) error {
	return s.deleteSome(ctx, "decline friend", fmt.Sprintf("friend request from %d", requester),
		`DELETE FROM friend_requests WHERE from_id = $1 AND to_id = $2`, requester, userID)
}

func (s *Store) RemoveFriend(ctx context.Context, userID, other int64) error {
	if err := s.check(); err != nil {
		return err
	}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		found := false
		for _, p := range [][2]int64{{userID, other}, {other, userID}} {
			ended, err := unfriend(ctx, tx, p[0], p[1])
			if err != nil {
				return err
			}
			found = found || ended
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM friend_requests WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)`, userID, other)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 && !found {
			return fmt.Errorf("friend %d: %w", other, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return wrapErr("remove friend", err)
	}
	return nil
}

// deleteSome runs each DELETE (args are shared; extra strings are more
// statements) in one transaction; ErrNotFound if none deleted a row.
func (s *Store) deleteSome(ctx context.Context, what, thing string, stmt string, a, b int64, more ...string) error {
	if err := s.check(); err != nil {
		return err
	}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var total int64
		for _, q := range append([]string{stmt}, more...) {
			res, err := tx.ExecContext(ctx, q, a, b)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			total += n
		}
		if total == 0 {
			return fmt.Errorf("%s: %w", thing, store.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return wrapErr(what, err)
	}
	return nil
}

func (s *Store) Block(ctx context.Context, userID, other int64, at time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	if r := rules.MayBlock(userID, other); r != nil {
		return r
	}
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		if n, err := countUsers(ctx, tx, []int64{userID, other}); err != nil {
			return err
		} else if n != 2 {
			return fmt.Errorf("user %d: %w", other, store.ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO blocks(user_id, blocked_id, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, blocked_id) DO NOTHING`, userID, other, millis(at)); err != nil {
			return err
		}
		return dropRequests(ctx, tx, userID, other)
	})
	if err != nil {
		return wrapErr("block", err)
	}
	return nil
}

func (s *Store) Unblock(ctx context.Context, userID, other int64) error {
	if err := s.check(); err != nil {
		return err
	}
	if _, err := s.write.ExecContext(ctx, `DELETE FROM blocks WHERE user_id = $1 AND blocked_id = $2`, userID, other); err != nil {
		return wrapErr("unblock", err)
	}
	return nil
}

func (s *Store) Contacts(ctx context.Context, userID int64) (store.Contacts, error) {
	if err := s.check(); err != nil {
		return store.Contacts{}, err
	}
	var c store.Contacts
	var policy string
	err := s.read.QueryRowContext(ctx, `SELECT friend_policy, friend_seq FROM users WHERE id = $1`, userID).Scan(&policy, &c.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Contacts{}, fmt.Errorf("user %d: %w", userID, store.ErrNotFound)
	} else if err != nil {
		return store.Contacts{}, wrapErr("contacts", err)
	}
	c.Policy = store.FriendPolicy(policy)
	lists := []struct {
		dst   *[]store.Contact
		query string
	}{
		{&c.Friends, `SELECT u.id, u.username, f.since, f.remark, f.category, f.seq FROM friends f JOIN users u ON u.id = f.friend_id WHERE f.user_id = $1`},
		{&c.Incoming, `SELECT u.id, u.username, r.created_at, '', '', 0 FROM friend_requests r JOIN users u ON u.id = r.from_id WHERE r.to_id = $1`},
		{&c.Outgoing, `SELECT u.id, u.username, r.created_at, '', '', 0 FROM friend_requests r JOIN users u ON u.id = r.to_id WHERE r.from_id = $1`},
		{&c.Blocked, `SELECT u.id, u.username, b.created_at, '', '', 0 FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.user_id = $1`},
	}
	for _, l := range lists {
		list, err := s.contactList(ctx, l.query+` ORDER BY u.username_lower`, userID)
		if err != nil {
			return store.Contacts{}, wrapErr("contacts", err)
		}
		*l.dst = list
	}
	return c, nil
}

func (s *Store) contactList(ctx context.Context, query string, userID int64) ([]store.Contact, error) {
	rows, err := s.read.QueryContext(ctx, query, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []store.Contact{}
	for rows.Next() {
		var c store.Contact
		var since int64
		if err := rows.Scan(&c.UserID, &c.Username, &since, &c.Remark, &c.Group, &c.Seq); err != nil {
			return nil, err
		}
		c.Since = timeOf(since)
		out = append(out, c)
	}
	return out, rows.Err()
}

// ContactIDs: a private conversation's members never leave, and a
// dissolved group has ended every membership, so members' current rows
// say it all.
func (s *Store) ContactIDs(ctx context.Context, userID int64) ([]int64, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT friend_id FROM friends WHERE user_id = $1
		UNION
		SELECT o.user_id FROM members me JOIN members o ON o.conversation_id = me.conversation_id
			WHERE me.user_id = $1 AND me.left_seq IS NULL AND o.left_seq IS NULL AND o.user_id <> $1`, userID)
	if err != nil {
		return nil, wrapErr("contact ids", err)
	}
	defer rows.Close()
	ids := []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, wrapErr("contact ids", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("contact ids", err)
	}
	return ids, nil
}

func (s *Store) BlockedEither(ctx context.Context, a, b int64) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	var blocked bool
	err := s.read.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM blocks
		WHERE (user_id = $1 AND blocked_id = $2) OR (user_id = $2 AND blocked_id = $1))`, a, b).Scan(&blocked)
	if err != nil {
		return false, wrapErr("blocked", err)
	}
	return blocked, nil
}

func (s *Store) SetConversationFlags(ctx context.Context, userID int64, conversationID string, pinned, muted *bool) (store.Conversation, error) {
	if err := s.check(); err != nil {
		return store.Conversation{}, err
	}
	var sets []string
	args := []any{conversationID, userID}
	if pinned != nil {
		args = append(args, *pinned)
		sets = append(sets, fmt.Sprintf("pinned = $%d", len(args)))
	}
	if muted != nil {
		args = append(args, *muted)
		sets = append(sets, fmt.Sprintf("muted = $%d", len(args)))
	}
	if len(sets) > 0 {
		res, err := s.write.ExecContext(ctx, `UPDATE members SET `+strings.Join(sets, ", ")+`
			WHERE conversation_id = $1 AND user_id = $2 AND left_seq IS NULL`, args...)
		if err != nil {
			return store.Conversation{}, wrapErr("set flags", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return store.Conversation{}, wrapErr("set flags", err)
		} else if n == 0 {
			return store.Conversation{}, fmt.Errorf("conversation %q: %w", conversationID, store.ErrNotMember)
		}
	}
	return s.Conversation(ctx, userID, conversationID)
}

// FileVisible relies on a recall clearing file_id: a recalled message no
// longer shows its file to anyone.
func (s *Store) FileVisible(ctx context.Context, userID int64, fileID string) (bool, error) {
	if err := s.check(); err != nil {
		return false, err
	}
	var ok bool
	err := s.read.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM messages m
		JOIN members me ON me.conversation_id = m.conversation_id AND me.user_id = $2
		WHERE m.file_id = $1 AND m.seq > me.joined_seq AND (me.left_seq IS NULL OR m.seq <= me.left_seq))`,
		fileID, userID).Scan(&ok)
	if err != nil {
		return false, wrapErr("file visible", err)
	}
	return ok, nil
}

func (s *Store) SetFriendInfo(ctx context.Context, userID, friendID int64, remark, group *string) (store.Contact, error) {
	if err := s.check(); err != nil {
		return store.Contact{}, err
	}
	var c store.Contact
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM friends WHERE user_id = $1 AND friend_id = $2`,
			userID, friendID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("friend %d: %w", friendID, store.ErrNotFound)
		}
		seq, err := nextFriendSeq(ctx, tx, userID)
		if err != nil {
			return err
		}
		sets := []string{"seq = $3"}
		args := []any{userID, friendID, seq}
		if remark != nil {
			args = append(args, *remark)
			sets = append(sets, fmt.Sprintf("remark = $%d", len(args)))
		}
		if group != nil {
			args = append(args, *group)
			sets = append(sets, fmt.Sprintf("category = $%d", len(args)))
		}
		if _, err := tx.ExecContext(ctx, `UPDATE friends SET `+strings.Join(sets, ", ")+`
			WHERE user_id = $1 AND friend_id = $2`, args...); err != nil {
			return err
		}
		var since int64
		if err := tx.QueryRowContext(ctx, `SELECT u.id, u.username, f.since, f.remark, f.category, f.seq
			FROM friends f JOIN users u ON u.id = f.friend_id WHERE f.user_id = $1 AND f.friend_id = $2`,
			userID, friendID).Scan(&c.UserID, &c.Username, &since, &c.Remark, &c.Group, &c.Seq); err != nil {
			return err
		}
		c.Since = timeOf(since)
		return nil
	})
	if err != nil {
		return store.Contact{}, wrapErr("set friend info", err)
	}
	return c, nil
}

func (s *Store) SetFriendPolicy(ctx context.Context, userID int64, policy store.FriendPolicy) error {
	if err := s.check(); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, `UPDATE users SET friend_policy = $1 WHERE id = $2`, string(policy), userID)
	return oneRow(res, err, fmt.Sprintf("user %d", userID))
}

// FriendChanges reads the user's friend seq before the changes: a change
// committing in between is then listed (its seq above the one returned,
// so listed again next time, which a sync tolerates) rather than missed.
func (s *Store) FriendChanges(ctx context.Context, userID int64, after uint64, limit int) ([]store.FriendChange, uint64, error) {
	if err := s.check(); err != nil {
		return nil, 0, err
	}
	var cur uint64
	err := s.read.QueryRowContext(ctx, `SELECT friend_seq FROM users WHERE id = $1`, userID).Scan(&cur)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("user %d: %w", userID, store.ErrNotFound)
	} else if err != nil {
		return nil, 0, wrapErr("friend changes", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT seq, id, username, since, remark, category, removed FROM (
			SELECT f.seq, u.id, u.username, f.since, f.remark, f.category, 0 AS removed
				FROM friends f JOIN users u ON u.id = f.friend_id WHERE f.user_id = $1 AND f.seq > $2
			UNION ALL
			SELECT r.seq, u.id, u.username, 0, '', '', 1
				FROM friend_removals r JOIN users u ON u.id = r.friend_id WHERE r.user_id = $1 AND r.seq > $2
		) c ORDER BY seq LIMIT $3`, userID, after, limit)
	if err != nil {
		return nil, 0, wrapErr("friend changes", err)
	}
	defer rows.Close()
	out := []store.FriendChange{}
	for rows.Next() {
		var c store.FriendChange
		var since int64
		var removed int
		if err := rows.Scan(&c.Seq, &c.UserID, &c.Username, &since, &c.Remark, &c.Group, &removed); err != nil {
			return nil, 0, wrapErr("friend changes", err)
		}
		c.Since, c.Removed = timeOf(since), removed == 1
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrapErr("friend changes", err)
	}
	return out, cur, nil
}
