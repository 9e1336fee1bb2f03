package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/magpie-im/magpie/internal/store"
)

// Key ids are NULL when unset, so the UNIQUE on them allows many apps
// without a key.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Store) CreateApp(ctx context.Context, a store.App) (store.App, error) {
	if err := s.check(); err != nil {
		return store.App{}, err
	}
	settings, err := json.Marshal(a.Settings)
	if err != nil {
		return store.App{}, fmt.Errorf("sqlstore: create app: %w", err)
	}
	a.CreatedAt = timeOf(nowMillis())
	k := a.Keys
	err = s.write.QueryRowContext(ctx, `INSERT INTO apps(name, created_at, settings, push_key_id, push_secret, admin_key_id, admin_secret)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		a.Name, millis(a.CreatedAt), string(settings), nullable(k.PushKeyID), k.PushSecret, nullable(k.AdminKeyID), k.AdminSecret).Scan(&a.ID)
	if s.d.isUniqueViolation(err) {
		return store.App{}, fmt.Errorf("app %q: %w", a.Name, store.ErrExists)
	}
	if err != nil {
		return store.App{}, fmt.Errorf("sqlstore: create app: %w", err)
	}
	return a, nil
}

func (s *Store) AppList(ctx context.Context) ([]store.App, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, name, created_at, settings,
		COALESCE(push_key_id, ''), push_secret, COALESCE(admin_key_id, ''), admin_secret FROM apps ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: apps: %w", err)
	}
	defer rows.Close()
	var out []store.App
	for rows.Next() {
		var a store.App
		var created int64
		var settings string
		if err := rows.Scan(&a.ID, &a.Name, &created, &settings,
			&a.Keys.PushKeyID, &a.Keys.PushSecret, &a.Keys.AdminKeyID, &a.Keys.AdminSecret); err != nil {
			return nil, fmt.Errorf("sqlstore: apps: %w", err)
		}
		a.CreatedAt = timeOf(created)
		if err := json.Unmarshal([]byte(settings), &a.Settings); err != nil {
			return nil, fmt.Errorf("sqlstore: app %q: settings: %w", a.Name, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: apps: %w", err)
	}
	return out, nil
}

func (s *Store) SetAppKeys(ctx context.Context, appID int64, k store.AppKeys) error {
	if err := s.check(); err != nil {
		return err
	}
	res, err := s.write.ExecContext(ctx, `UPDATE apps SET push_key_id = $1, push_secret = $2, admin_key_id = $3, admin_secret = $4 WHERE id = $5`,
		nullable(k.PushKeyID), k.PushSecret, nullable(k.AdminKeyID), k.AdminSecret, appID)
	if s.d.isUniqueViolation(err) {
		return fmt.Errorf("app %d keys: %w", appID, store.ErrExists)
	}
	return oneRow(res, err, fmt.Sprintf("app %d", appID))
}

func (s *Store) SetAppSettings(ctx context.Context, appID int64, st store.AppSettings) error {
	if err := s.check(); err != nil {
		return err
	}
	settings, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("sqlstore: app settings: %w", err)
	}
	res, err := s.write.ExecContext(ctx, `UPDATE apps SET settings = $1 WHERE id = $2`, string(settings), appID)
	return oneRow(res, err, fmt.Sprintf("app %d", appID))
}

// oneRow turns an UPDATE of one row by key into ErrNotFound when it
// matched none.
func oneRow(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return nil
}
