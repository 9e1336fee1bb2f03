package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Disk keeps files in a directory:
//
//	DIR/ab/f_ab…      the bytes
//	DIR/ab/f_ab….json the metadata (written last: a file exists once it is there)
//	DIR/tmp/          uploads in progress, emptied at start
//
// where "ab" are the first two hex digits of the id, so no directory holds
// more than 1/256 of the files.
type Disk struct {
	dir string
}

var _ Blobs = (*Disk)(nil)

// NewDisk opens (creating if needed) a directory of files and removes
// uploads a crash left unfinished.
func NewDisk(dir string) (*Disk, error) {
	if dir == "" {
		return nil, errors.New("files: no directory")
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("files: clean %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("files: %w", err)
	}
	return &Disk{dir: dir}, nil
}

// paths returns the blob and metadata paths of a valid id.
func (d *Disk) paths(id string) (blob, meta string) {
	shard := filepath.Join(d.dir, id[len(idPrefix):len(idPrefix)+2])
	return filepath.Join(shard, id), filepath.Join(shard, id+".json")
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put implements Blobs: bytes to a temporary file, fsync, rename into the
// shard; then the metadata the same way.
func (d *Disk) Put(ctx context.Context, m Meta, r io.Reader) (_ Meta, err error) {
	if !ValidID(m.ID) {
		return Meta{}, fmt.Errorf("files: invalid id %q", m.ID)
	}
	blobPath, metaPath := d.paths(m.ID)
	if err := os.MkdirAll(filepath.Dir(blobPath), 0o700); err != nil {
		return Meta{}, fmt.Errorf("files: %w", err)
	}
	h := sha256.New()
	n, err := writeAtomic(filepath.Join(d.dir, "tmp"), blobPath, io.TeeReader(ctxReader{ctx, r}, h))
	if err != nil {
		return Meta{}, err
	}
	m.Size, m.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	defer func() {
		if err != nil {
			_ = os.Remove(blobPath)
		}
	}()
	b, err := json.Marshal(m)
	if err != nil {
		return Meta{}, fmt.Errorf("files: %w", err)
	}
	if _, err := writeAtomic(filepath.Join(d.dir, "tmp"), metaPath, bytes.NewReader(b)); err != nil {
		return Meta{}, err
	}
	return m, nil
}

// writeAtomic copies r into a new file in tmpDir, syncs it, and renames it
// to path. On error the temporary file is removed and r's error returned
// unchanged (it may carry a client-visible code).
func writeAtomic(tmpDir, path string, r io.Reader) (n int64, err error) {
	f, err := os.CreateTemp(tmpDir, "up-*")
	if err != nil {
		return 0, fmt.Errorf("files: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if n, err = io.Copy(f, r); err != nil {
		return 0, err
	}
	if err = f.Sync(); err != nil {
		return 0, fmt.Errorf("files: %w", err)
	}
	if err = f.Close(); err != nil {
		return 0, fmt.Errorf("files: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return 0, fmt.Errorf("files: %w", err)
	}
	return n, nil
}

// Stat implements Blobs.
func (d *Disk) Stat(ctx context.Context, id string) (Meta, error) {
	if !ValidID(id) {
		return Meta{}, ErrNotFound
	}
	_, metaPath := d.paths(id)
	b, err := os.ReadFile(metaPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Meta{}, ErrNotFound
	} else if err != nil {
		return Meta{}, fmt.Errorf("files: %w", err)
	}
	var m Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return Meta{}, fmt.Errorf("files: metadata of %s: %w", id, err)
	}
	return m, nil
}

// Open implements Blobs.
func (d *Disk) Open(ctx context.Context, id string) (io.ReadSeekCloser, Meta, error) {
	m, err := d.Stat(ctx, id)
	if err != nil {
		return nil, Meta{}, err
	}
	blobPath, _ := d.paths(id)
	f, err := os.Open(blobPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Meta{}, ErrNotFound
	} else if err != nil {
		return nil, Meta{}, fmt.Errorf("files: %w", err)
	}
	return f, m, nil
}

// Delete implements Blobs: metadata first, so a half-deleted file is
// already gone for readers.
func (d *Disk) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return ErrNotFound
	}
	blobPath, metaPath := d.paths(id)
	if err := os.Remove(metaPath); errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	} else if err != nil {
		return fmt.Errorf("files: %w", err)
	}
	if err := os.Remove(blobPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("files: %w", err)
	}
	return nil
}
