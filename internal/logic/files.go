package logic

import "context"

// FileMeta describes an uploaded file.
type FileMeta struct {
	ID          string
	OwnerID     int64
	Name        string
	ContentType string
	Size        int64
}

// Files is where uploads are kept (internal/files). Stat returns
// store.ErrNotFound for an unknown id.
type Files interface {
	Stat(ctx context.Context, id string) (FileMeta, error)
}
