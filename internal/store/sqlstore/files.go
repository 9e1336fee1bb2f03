package sqlstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// A SQLite database holds every message, password hash and session: like
// the token secret next to it, it is for the server's user alone. SQLite
// creates files with 0644 less the umask, so the mode is set here instead
// of left to the environment: the database file is made 0600 before
// SQLite opens it (SQLite gives its -wal and -shm files the database's
// mode), and those two are set to 0600 again once open.
const (
	fileMode = 0o600
	dirMode  = 0o700
)

// SQLiteFiles lists the files of a SQLite dsn (the database, its -wal and
// -shm), or nil for PostgreSQL: for the start-up check of their modes.
func SQLiteFiles(dsn string) []string {
	if dsn == "" || isPostgresDSN(dsn) {
		return nil
	}
	return []string{dsn, dsn + "-wal", dsn + "-shm"}
}

// createPrivateFile creates the database file with fileMode if it does not
// exist yet. An existing file keeps its mode (the server warns at start
// if it is looser).
func createPrivateFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlstore: create %s: %w", path, err)
	}
	// The umask may have taken bits away, never added any; set the mode
	// exactly anyway, so it does not depend on the umask at all.
	err = f.Chmod(fileMode)
	return errors.Join(err, f.Close())
}

// restrictSidecars sets the -wal and -shm files to fileMode, should SQLite
// not have done so (it copies the database's mode, which may be an older,
// looser one: the server warns about that, and the sidecars, which hold
// the latest writes, are kept private whatever it is).
func restrictSidecars(path string) error {
	var errs []error
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("sqlstore: chmod %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}
