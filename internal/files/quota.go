package files

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/magpie-im/magpie/internal/logic"
)

// Usage is an optional Blobs method: the bytes stored per owner. Uploads
// with a quota need it; it is read once, at the first upload, and kept up
// to date in memory from then on (so, in a cluster sharing one files
// directory, each node counts its own uploads on top of what was there
// when it started).
type Usage interface {
	Usage(ctx context.Context) (map[int64]int64, error)
}

// quota tracks bytes per owner against a limit.
type quota struct {
	limit int64 // 0: none

	mu       sync.Mutex // guards the fields below
	loaded   bool
	used     map[int64]int64 // stored
	reserved map[int64]int64 // uploads in progress, at their largest possible size
}

// SetQuota limits the bytes each user may keep stored (0: no limit). The
// blobs must implement Usage. Call it before the first upload.
func (u *Uploads) SetQuota(limit int64) error {
	if limit > 0 {
		if _, ok := u.blobs.(Usage); !ok {
			return fmt.Errorf("files: a quota needs blobs that report usage")
		}
	}
	u.quota.limit = limit
	return nil
}

// reserve sets aside room for one upload of owner: at most max bytes, less
// if the quota has less left. It returns the room and a release func to
// call with the bytes actually stored (0 on failure).
func (u *Uploads) reserve(ctx context.Context, owner int64, max int64) (room int64, release func(stored int64), err error) {
	q := &u.quota
	if q.limit <= 0 {
		return max, func(int64) {}, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.loaded {
		used, err := u.blobs.(Usage).Usage(ctx)
		if err != nil {
			return 0, nil, err
		}
		q.used, q.reserved, q.loaded = used, map[int64]int64{}, true
	}
	left := q.limit - q.used[owner] - q.reserved[owner]
	if left <= 0 {
		return 0, nil, q.exceeded(owner)
	}
	room = min(max, left)
	q.reserved[owner] += room
	return room, func(stored int64) {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.reserved[owner] -= room
		q.used[owner] += stored
	}, nil
}

// exceeded is the refusal of an upload over the quota. Called with mu held.
func (q *quota) exceeded(owner int64) error {
	return &logic.Error{Kind: logic.KindTooLarge, Err: ErrQuotaExceeded,
		Msg: fmt.Sprintf("upload quota exceeded: %d of %d bytes used; delete files or ask an admin", q.used[owner], q.limit)}
}

// forget subtracts a deleted file from its owner's usage.
func (u *Uploads) forget(m Meta) {
	q := &u.quota
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.loaded {
		q.used[m.OwnerID] = max(0, q.used[m.OwnerID]-m.Size)
	}
}

// Usage implements the optional Usage of Blobs by reading every
// metadata file once.
func (d *Disk) Usage(ctx context.Context) (map[int64]int64, error) {
	paths, err := filepath.Glob(filepath.Join(d.dir, "??", idPrefix+"*.json"))
	if err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	used := map[int64]int64{}
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue // deleted meanwhile
		}
		var m Meta
		if json.Unmarshal(b, &m) == nil {
			used[m.OwnerID] += m.Size
		}
	}
	return used, nil
}
