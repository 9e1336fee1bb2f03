package server

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/magpie-im/magpie/internal/store/sqlstore"
)

// warnLooseModes logs, once at start, each of the node's private files
// that other users may read or write: the data directory, the SQLite
// database with its -wal and -shm, and the token secret. New ones are
// created private (0700 and 0600); existing ones are left as they are
// (an operator may have a reason) but should not be so silently.
func warnLooseModes(log *slog.Logger, paths ...string) {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue // not created (yet): nothing to say
		}
		if m := fi.Mode().Perm(); m&0o077 != 0 {
			want := fs.FileMode(0o600)
			if fi.IsDir() {
				want = 0o700
			}
			log.Warn("file is accessible to other users", "path", p, "mode", m.String(), "want", want.String())
		}
	}
}

// privatePaths are the files warnLooseModes checks for a logic node.
func (n *Node) privatePaths() []string {
	paths := []string{n.cfg.Data, filepath.Join(n.cfg.Data, "token.secret")}
	return append(paths, sqlstore.SQLiteFiles(n.cfg.StoreDSN())...)
}
