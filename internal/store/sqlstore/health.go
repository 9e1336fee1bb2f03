package sqlstore

import (
	"context"
	"fmt"
)

// Ping runs a trivial query on a reading connection. It goes through the
// pool, not the SQLite writer, so a long commit does not make the
// database look down.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	var one int
	if err := s.read.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlstore: ping: %w", err)
	}
	return nil
}
