package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/magpie-im/magpie/internal/store"
)

// Imports (store.Importer): each call is one transaction, so a batch of
// thousands costs one commit, and an import run again changes nothing.

func (s *Store) UsersByName(ctx context.Context, appID int64, names []string) ([]store.User, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	appID = appOrDefault(appID)
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = foldName(appID, n)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	var users []store.User
	for chunk := range slices.Chunk(keys, 500) {
		args := make([]any, len(chunk))
		for i, k := range chunk {
			args[i] = k
		}
		rows, err := s.read.QueryContext(ctx,
			`SELECT `+userCols+` FROM users WHERE username_lower IN (`+placeholders(1, len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: users by name: %w", err)
		}
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlstore: users by name: %w", err)
			}
			users = append(users, u)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("sqlstore: users by name: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlstore: users by name: %w", err)
		}
	}
	return users, nil
}

func (s *Store) ImportFriendships(ctx context.Context, pairs []store.Friendship) ([]bool, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var created []bool
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		created = make([]bool, len(pairs))
		for i, p := range pairs {
			if p.UserID == p.FriendID {
				return fmt.Errorf("friendship of user %d with itself: %w", p.UserID, store.ErrForbidden)
			}
			at := millis(p.Since)
			if at == 0 {
				at = nowMillis()
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO friends(user_id, friend_id, since) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, friend_id) DO NOTHING`, p.UserID, p.FriendID, at)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 {
				continue // there already (from this call too: a pair named twice)
			}
			created[i] = true
			if err := befriend(ctx, tx, p.UserID, p.FriendID, at); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("import friendships", err)
	}
	return created, nil
}

func (s *Store) ImportGroups(ctx context.Context, appID int64, groups []store.ImportGroup) ([]store.ImportGroupResult, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	appID = appOrDefault(appID)
	var out []store.ImportGroupResult
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		out = make([]store.ImportGroupResult, len(groups))
		for i, g := range groups {
			var id string
			err := tx.QueryRowContext(ctx, `SELECT group_id FROM imported_groups WHERE app_id = $1 AND external_id = $2`,
				appID, g.ExternalID).Scan(&id)
			if err == nil {
				out[i] = store.ImportGroupResult{GroupID: id, Existing: true}
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			members := append([]store.ImportMember{{UserID: g.OwnerID, Role: store.RoleOwner}}, g.Members...)
			ids := make([]int64, len(members))
			for k, m := range members {
				ids[k] = m.UserID
			}
			if n, err := countUsers(ctx, tx, ids); err != nil {
				return err
			} else if n != len(ids) {
				return fmt.Errorf("group %q members: %w", g.ExternalID, store.ErrNotFound)
			}
			at := millis(g.At)
			if at == 0 {
				at = nowMillis()
			}
			policy := g.JoinPolicy
			if policy == "" {
				policy = store.JoinInvite
			}
			if id, err = insertGroup(ctx, tx, g.Name, policy, members, at); err != nil {
				return err
			}
			if _, err := appendEvent(ctx, tx, id, 0, g.OwnerID, g.Event, at); err != nil {
				return err
			}
			if err := touchGroup(ctx, tx, id, nil); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO imported_groups(app_id, external_id, group_id) VALUES ($1, $2, $3)`,
				appID, g.ExternalID, id); err != nil {
				return err
			}
			out[i] = store.ImportGroupResult{GroupID: id}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("import groups", err)
	}
	return out, nil
}
