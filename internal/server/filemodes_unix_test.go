//go:build unix

package server

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// withUmask runs the test under umask m: the modes below must not depend
// on the umask a service manager happens to set. The umask is process-wide,
// and no test of this package runs in parallel.
func withUmask(t *testing.T, m int) {
	old := syscall.Umask(m)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestDataFilesArePrivate(t *testing.T) {
	withUmask(t, 0)
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, testConfig(t, dir))
	c, _ := newClient(t, n, "alice", "a", "tcp", true)
	if _, err := c.SendText(context.Background(), "alice", "note to self"); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{
		dir:                                 0o700,
		filepath.Join(dir, "magpie.db"):     0o600,
		filepath.Join(dir, "magpie.db-wal"): 0o600,
		filepath.Join(dir, "magpie.db-shm"): 0o600,
		filepath.Join(dir, "token.secret"):  0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", path, got, want)
		}
	}
}

// syncBuffer is a log destination safe for the node's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Files from an older version (or an operator's cp) keep their mode, but
// the node says at start which ones others may read.
func TestLooseExistingModesAreLogged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "magpie.db")
	if err := os.WriteFile(db, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(t, dir)
	n, err := Start(ctx, cfg, Roles{Gateway: true, Logic: true}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopNode(t, n) })
	out := logs.String()
	for _, path := range []string{dir, db} {
		if !strings.Contains(out, "path="+path+" ") {
			t.Errorf("no warning about %s in:\n%s", path, out)
		}
	}
	for _, path := range []string{db + "-wal", db + "-shm", filepath.Join(dir, "token.secret")} {
		if strings.Contains(out, "path="+path+" ") {
			t.Errorf("warning about %s, which the node made private:\n%s", path, out)
		}
		if fi, err := os.Stat(path); err != nil {
			t.Errorf("%s: %v", path, err)
		} else if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
	}
}
