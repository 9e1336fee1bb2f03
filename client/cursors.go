package client

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// FileCursors is a CursorStore in a JSON file, so a new process syncs from
// where the last one stopped instead of replaying all history:
//
//	store := client.NewFileCursors("alice.cursors.json")
//	defer store.Flush()
//	c := client.New(client.Options{…, Cursors: store})
//
// Save keeps the cursor in memory and writes the file (whole, through a
// temporary file and a rename, so it is never half written) at most every
// Interval; Flush writes what is pending at once. After a crash a process
// may see up to Interval's messages again (OnMessage gets them once more),
// never miss one. One file per user and device; two Clients must not share
// one.
type FileCursors struct {
	Path     string
	Interval time.Duration // 0: one second

	mu      sync.Mutex
	cursors map[string]uint64
	dirty   bool
	written time.Time
	timer   *time.Timer
	err     error // the last write's failure, returned by the next Save or Flush
}

// NewFileCursors returns a FileCursors for path; the file need not exist.
func NewFileCursors(path string) *FileCursors { return &FileCursors{Path: path} }

// Load reads the file; a missing file is no cursors.
func (f *FileCursors) Load() (map[string]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cursors = map[string]uint64{}
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &f.cursors); err != nil {
		return nil, errors.New("magpie: cursor file " + f.Path + ": " + err.Error())
	}
	out := make(map[string]uint64, len(f.cursors))
	for k, v := range f.cursors {
		out[k] = v
	}
	return out, nil
}

// Save records a conversation's cursor; see FileCursors for when it is
// written.
func (f *FileCursors) Save(conversationID string, seq uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cursors == nil {
		f.cursors = map[string]uint64{}
	}
	if seq <= f.cursors[conversationID] {
		return f.takeErrLocked()
	}
	f.cursors[conversationID] = seq
	f.dirty = true
	every := f.Interval
	if every <= 0 {
		every = time.Second
	}
	if wait := every - time.Since(f.written); wait > 0 {
		if f.timer == nil {
			f.timer = time.AfterFunc(wait, func() { f.Flush() })
		}
		return f.takeErrLocked()
	}
	f.err = f.writeLocked()
	return f.takeErrLocked()
}

// Flush writes pending cursors now.
func (f *FileCursors) Flush() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
	if f.dirty {
		f.err = f.writeLocked()
	}
	return f.takeErrLocked()
}

func (f *FileCursors) takeErrLocked() error {
	err := f.err
	f.err = nil
	return err
}

func (f *FileCursors) writeLocked() error {
	b, err := json.Marshal(f.cursors)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), filepath.Base(f.Path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), f.Path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	f.dirty, f.written = false, time.Now()
	return nil
}
