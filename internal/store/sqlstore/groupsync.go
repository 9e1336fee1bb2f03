package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/magpie-im/magpie/internal/store"
)

// The group columns of a list (UserGroups, GroupChanges): c the
// conversation, the owner joined as o and ou.
const groupListColumns = `c.id, c.name, c.join_policy, c.muted_until, c.created_at,
		(SELECT COUNT(*) FROM members x WHERE x.conversation_id = c.id AND x.left_seq IS NULL),
		o.user_id, ou.username, c.intro, c.notice, c.avatar_url, c.max_members, c.version, c.dissolved_at`

type rowScanner interface{ Scan(dst ...any) error }

func scanGroupListRow(r rowScanner, extra ...any) (store.GroupInfo, error) {
	var g store.GroupInfo
	var policy string
	var muted, created, dissolved int64
	var owner sql.NullInt64
	var ownerName sql.NullString
	dst := append([]any{&g.ID, &g.Name, &policy, &muted, &created, &g.MemberCount, &owner, &ownerName,
		&g.Intro, &g.Notice, &g.AvatarURL, &g.MaxMembers, &g.Version, &dissolved}, extra...)
	if err := r.Scan(dst...); err != nil {
		return g, err
	}
	g.JoinPolicy, g.MutedUntil, g.CreatedAt = store.JoinPolicy(policy), timeOf(muted), timeOf(created)
	g.OwnerID, g.Owner, g.Dissolved = owner.Int64, ownerName.String, dissolved != 0
	return g, nil
}

// effectiveMax is the tighter of the server's limit and the group's own
// (0 for either: no limit from it).
func effectiveMax(server, group int) int {
	switch {
	case group <= 0:
		return server
	case server <= 0:
		return group
	}
	return min(server, group)
}

// touchGroup gives the group the next group version, and the
// memberships in ended the same (they left with this change). The
// counter's row lock is taken after the group's, as every caller does,
// and held to the commit: versions become visible in order.
func touchGroup(ctx context.Context, tx *sql.Tx, groupID string, ended []int64) error {
	var v int64
	if err := tx.QueryRowContext(ctx, `UPDATE group_sync SET seq = seq + 1 WHERE id = 1 RETURNING seq`).Scan(&v); err != nil {
		return fmt.Errorf("group version: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE conversations SET version = $1 WHERE id = $2`, v, groupID); err != nil {
		return err
	}
	for _, uid := range ended {
		if _, err := tx.ExecContext(ctx, `UPDATE members SET version = $1 WHERE conversation_id = $2 AND user_id = $3`,
			v, groupID, uid); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) JoinRequests(ctx context.Context, groupID string) ([]store.JoinRequest, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT r.user_id, u.username, r.created_at FROM group_join_requests r
		JOIN users u ON u.id = r.user_id WHERE r.conversation_id = $1 ORDER BY r.created_at, r.user_id`, groupID)
	if err != nil {
		return nil, wrapErr("join requests", err)
	}
	defer rows.Close()
	out := []store.JoinRequest{}
	for rows.Next() {
		var r store.JoinRequest
		var at int64
		if err := rows.Scan(&r.UserID, &r.Username, &at); err != nil {
			return nil, wrapErr("join requests", err)
		}
		r.At = timeOf(at)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("join requests", err)
	}
	return out, nil
}

// GroupChanges reads the counter before the groups, as FriendChanges does:
// a change committing in between is listed (again next time) rather than
// missed. A current member's group counts at its last change; a former
// member's at the change that ended the membership, and later changes of
// the group are not theirs to see.
func (s *Store) GroupChanges(ctx context.Context, userID int64, after uint64, limit int) ([]store.GroupSyncEntry, uint64, error) {
	if err := s.check(); err != nil {
		return nil, 0, err
	}
	var cur uint64
	if err := s.read.QueryRowContext(ctx, `SELECT seq FROM group_sync WHERE id = 1`).Scan(&cur); err != nil {
		return nil, 0, wrapErr("group changes", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+groupListColumns+`, me.left_seq IS NOT NULL,
			CASE WHEN me.left_seq IS NULL THEN c.version ELSE me.version END AS v
		FROM members me
		JOIN conversations c ON c.id = me.conversation_id
		LEFT JOIN members o ON o.conversation_id = c.id AND o.role = 'owner' AND o.left_seq IS NULL
		LEFT JOIN users ou ON ou.id = o.user_id
		WHERE me.user_id = $1 AND c.kind = 'group'
			AND ((me.left_seq IS NULL AND c.version > $2) OR (me.left_seq IS NOT NULL AND me.version > $2))
		ORDER BY v, c.id LIMIT $3`, userID, after, limit)
	if err != nil {
		return nil, 0, wrapErr("group changes", err)
	}
	defer rows.Close()
	out := []store.GroupSyncEntry{}
	for rows.Next() {
		var e store.GroupSyncEntry
		var err error
		if e.Group, err = scanGroupListRow(rows, &e.Left, &e.Version); err != nil {
			return nil, 0, wrapErr("group changes", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, wrapErr("group changes", err)
	}
	return out, cur, nil
}
