package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/magpie-im/magpie/internal/store"
)

func (s *Store) UpdateProfile(ctx context.Context, userID int64, p store.ProfileUpdate) (store.User, error) {
	if err := s.check(); err != nil {
		return store.User{}, err
	}
	var u store.User
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = $1 AND deleted_at = 0`, userID))
		if err != nil {
			return userErr(err, fmt.Sprintf("user %d", userID))
		}
		if p.DisplayName != nil {
			cur.DisplayName = *p.DisplayName
		}
		if p.AvatarURL != nil {
			cur.AvatarURL = *p.AvatarURL
		}
		if p.Custom != nil {
			cur.Custom = *p.Custom
		}
		custom := []byte("{}")
		if len(cur.Custom) > 0 {
			if custom, err = json.Marshal(cur.Custom); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET display_name = $1, avatar_url = $2, custom = $3 WHERE id = $4`,
			cur.DisplayName, cur.AvatarURL, string(custom), userID); err != nil {
			return err
		}
		u = cur
		return nil
	})
	if err != nil {
		return store.User{}, wrapErr("update profile", err)
	}
	return u, nil
}
