package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// foldName is the key usernames are unique under: the folded name in the
// default app, "<app id>:name" in the others (see migration 8).
func foldName(appID int64, name string) string {
	if appID == store.DefaultApp || appID == 0 {
		return strings.ToLower(name)
	}
	return strconv.FormatInt(appID, 10) + ":" + strings.ToLower(name)
}

func appOrDefault(appID int64) int64 {
	if appID == 0 {
		return store.DefaultApp
	}
	return appID
}

func (s *Store) CreateUser(ctx context.Context, appID int64, username, passwordHash string) (store.User, error) {
	if err := s.check(); err != nil {
		return store.User{}, err
	}
	appID = appOrDefault(appID)
	u := store.User{AppID: appID, Username: username, PasswordHash: passwordHash, CreatedAt: timeOf(nowMillis()), AuthSource: "local"}
	err := s.write.QueryRowContext(ctx, `INSERT INTO users(username, username_lower, password_hash, created_at, app_id)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		username, foldName(appID, username), passwordHash, millis(u.CreatedAt), appID).Scan(&u.ID)
	if s.d.isUniqueViolation(err) {
		return store.User{}, fmt.Errorf("user %q: %w", username, store.ErrExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("sqlstore: create user: %w", err)
	}
	return u, nil
}

// CreateExternalUser: the users' unique folded name is shared by every
// source, so a directory user and a local account can never hold the
// same name.
func (s *Store) CreateExternalUser(ctx context.Context, u store.User) (store.User, error) {
	if err := s.check(); err != nil {
		return store.User{}, err
	}
	if u.AuthSource == "" || u.AuthSource == "local" {
		return store.User{}, fmt.Errorf("sqlstore: create external user %q: auth source %q is not an outside source", u.Username, u.AuthSource)
	}
	u.PasswordHash, u.CreatedAt, u.AppID = "", timeOf(nowMillis()), appOrDefault(u.AppID)
	err := s.write.QueryRowContext(ctx, `INSERT INTO users(username, username_lower, password_hash, created_at, auth_source, display_name, email, app_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
		u.Username, foldName(u.AppID, u.Username), "", millis(u.CreatedAt), u.AuthSource, u.DisplayName, u.Email, u.AppID).Scan(&u.ID)
	if s.d.isUniqueViolation(err) {
		return store.User{}, fmt.Errorf("user %q: %w", u.Username, store.ErrExists)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("sqlstore: create external user: %w", err)
	}
	return u, nil
}

func (s *Store) SetProfile(ctx context.Context, userID int64, displayName, email string) error {
	if err := s.check(); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, `UPDATE users SET display_name = $1, email = $2 WHERE id = $3`, displayName, email, userID)
	if err != nil {
		return fmt.Errorf("sqlstore: set profile: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: set profile: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("user %d: %w", userID, store.ErrNotFound)
	}
	return nil
}

// ImportUsers: one transaction for the whole batch (a migration imports
// thousands; one commit each would be one fsync each).
func (s *Store) ImportUsers(ctx context.Context, users []store.User) ([]store.ImportResult, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	var out []store.ImportResult
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		out = make([]store.ImportResult, len(users))
		now := millis(timeOf(nowMillis()))
		for i, u := range users {
			if u.AuthSource == "" {
				u.AuthSource = "local"
			}
			u.CreatedAt, u.AppID = timeOf(now), appOrDefault(u.AppID)
			key := foldName(u.AppID, u.Username)
			custom := []byte("{}")
			if len(u.Custom) > 0 {
				var err error
				if custom, err = json.Marshal(u.Custom); err != nil {
					return fmt.Errorf("sqlstore: import user %q: %w", u.Username, err)
				}
			}
			err := tx.QueryRowContext(ctx, `INSERT INTO users(username, username_lower, password_hash, created_at, auth_source, display_name, email, app_id,
				avatar_url, custom)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (username_lower) DO NOTHING RETURNING id`,
				u.Username, key, u.PasswordHash, now, u.AuthSource, u.DisplayName, u.Email, u.AppID, u.AvatarURL, string(custom)).Scan(&u.ID)
			if err == nil {
				out[i] = store.ImportResult{User: u}
				continue
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlstore: import user %q: %w", u.Username, err)
			}
			cur, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE username_lower = $1`, key))
			if err != nil {
				return fmt.Errorf("sqlstore: import user %q: %w", u.Username, err)
			}
			out[i] = store.ImportResult{User: cur, Existing: true}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

const userCols = `id, username, password_hash, created_at, auth_source, display_name, email, app_id, disabled_at, deleted_at,
	avatar_url, custom`

func scanUser(sc interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var created, disabled, deleted int64
	var custom string
	err := sc.Scan(&u.ID, &u.Username, &u.PasswordHash, &created, &u.AuthSource, &u.DisplayName, &u.Email, &u.AppID, &disabled, &deleted,
		&u.AvatarURL, &custom)
	u.CreatedAt, u.DisabledAt, u.DeletedAt = timeOf(created), timeOf(disabled), timeOf(deleted)
	if err == nil && custom != "" && custom != "{}" {
		if jerr := json.Unmarshal([]byte(custom), &u.Custom); jerr != nil {
			return u, fmt.Errorf("user %d: custom fields: %w", u.ID, jerr)
		}
	}
	return u, err
}

func (s *Store) UserByName(ctx context.Context, appID int64, username string) (store.User, error) {
	if err := s.check(); err != nil {
		return store.User{}, err
	}
	u, err := scanUser(s.read.QueryRowContext(ctx,
		`SELECT `+userCols+` FROM users WHERE username_lower = $1`, foldName(appOrDefault(appID), username)))
	return u, userErr(err, "user "+username)
}

func (s *Store) UserByID(ctx context.Context, id int64) (store.User, error) {
	if err := s.check(); err != nil {
		return store.User{}, err
	}
	u, err := scanUser(s.read.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	return u, userErr(err, fmt.Sprintf("user %d", id))
}

func userErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	default:
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
}

// UsersByID queries in chunks to stay under both dialects' limits on the
// number of bound parameters.
func (s *Store) UsersByID(ctx context.Context, ids []int64) ([]store.User, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var users []store.User
	for chunk := range slices.Chunk(ids, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.read.QueryContext(ctx,
			`SELECT `+userCols+` FROM users WHERE id IN (`+placeholders(1, len(chunk))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: users by id: %w", err)
		}
		for rows.Next() {
			u, err := scanUser(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlstore: users by id: %w", err)
			}
			users = append(users, u)
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("sqlstore: users by id: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlstore: users by id: %w", err)
		}
	}
	return users, nil
}

// placeholders returns "$from, $from+1, ..." n times.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", from+i)
	}
	return b.String()
}

func (s *Store) CreateSession(ctx context.Context, ss store.Session) error {
	if err := s.check(); err != nil {
		return err
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO sessions(id, user_id, device, platform, created_at, expires_at, revoked)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		ss.ID, ss.UserID, ss.Device, ss.Platform, millis(ss.CreatedAt), millis(ss.ExpiresAt), ss.Revoked)
	if s.d.isUniqueViolation(err) {
		return fmt.Errorf("session %q: %w", ss.ID, store.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: create session: %w", err)
	}
	return nil
}

const sessionCols = `id, user_id, device, platform, created_at, expires_at, revoked, last_seen_at`

func scanSession(sc interface{ Scan(...any) error }) (store.Session, error) {
	var ss store.Session
	var created, expires, seen int64
	err := sc.Scan(&ss.ID, &ss.UserID, &ss.Device, &ss.Platform, &created, &expires, &ss.Revoked, &seen)
	ss.CreatedAt, ss.ExpiresAt, ss.LastSeen = timeOf(created), timeOf(expires), timeOf(max(seen, created))
	return ss, err
}

func (s *Store) Session(ctx context.Context, id string) (store.Session, error) {
	if err := s.check(); err != nil {
		return store.Session{}, err
	}
	ss, err := scanSession(s.read.QueryRowContext(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Session{}, fmt.Errorf("session %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("sqlstore: session: %w", err)
	}
	return ss, nil
}

func (s *Store) ActiveSessions(ctx context.Context, userID int64, now time.Time) ([]store.Session, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE user_id = $1 AND revoked = $2 AND expires_at > $3
		ORDER BY created_at, id`, userID, false, now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("sqlstore: active sessions: %w", err)
	}
	defer rows.Close()
	var out []store.Session
	for rows.Next() {
		ss, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: active sessions: %w", err)
		}
		out = append(out, ss)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: active sessions: %w", err)
	}
	return out, nil
}

func (s *Store) RevokeSession(ctx context.Context, id string) error {
	if err := s.check(); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, `UPDATE sessions SET revoked = $1 WHERE id = $2`, true, id)
	if err != nil {
		return fmt.Errorf("sqlstore: revoke session: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: revoke session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("session %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	if err := s.check(); err != nil {
		return err
	}
	// The MAX keeps a late write from an older request from moving it back.
	ms := at.UnixMilli()
	res, err := s.write.ExecContext(ctx, `UPDATE sessions SET last_seen_at = CASE WHEN last_seen_at > $1 THEN last_seen_at ELSE $1 END
		WHERE id = $2`, ms, id)
	if err != nil {
		return fmt.Errorf("sqlstore: touch session: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: touch session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("session %q: %w", id, store.ErrNotFound)
	}
	return nil
}

func (s *Store) SetPasswordHash(ctx context.Context, userID int64, passwordHash string) error {
	if err := s.check(); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, passwordHash, userID)
	if err != nil {
		return fmt.Errorf("sqlstore: set password: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: set password: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("user %d: %w", userID, store.ErrNotFound)
	}
	return nil
}
