package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds the few places where SQLite and PostgreSQL differ. Queries
// are written once with $N placeholders, which both drivers accept, and
// statements over many rows take them from rowsCTE.
type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// forUpdate is appended to reads that must lock rows. SQLite needs none:
// its write transactions already hold the database's single write lock.
func (d dialect) forUpdate() string {
	if d == dialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

// snapshotRead is the transaction for reads that must see one state across
// statements. PostgreSQL's default READ COMMITTED takes a snapshot per
// statement; REPEATABLE READ keeps the first one. A SQLite read transaction
// in WAL mode keeps the snapshot of its first read already.
func (d dialect) snapshotRead() *sql.TxOptions {
	if d == dialectPostgres {
		return &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}
	}
	return &sql.TxOptions{ReadOnly: true}
}

// rowsCTE returns the common table expression head AS (...) that holds
// rows, whose columns have the SQL types types, and the arguments it binds.
// PostgreSQL gets one array per column, unnested: the text is the same for
// any number of rows, so each connection prepares it once and the server
// keeps one plan, not one per batch size. SQLite gets a VALUES list of
// anonymous parameters: it would find each "$N" by a linear search of the
// statement's parameter names, quadratic in the rows.
func (d dialect) rowsCTE(head string, types []string, rows [][]any) (string, []any) {
	var sb strings.Builder
	sb.WriteString(head + " AS (")
	if d == dialectPostgres {
		sb.WriteString("SELECT * FROM unnest(")
		args := make([]any, len(types))
		for j, t := range types {
			col := make([]any, len(rows))
			for i, r := range rows {
				col[i] = r[j]
			}
			args[j] = col
			if j > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, "CAST($%d AS %s[])", j+1, t)
		}
		sb.WriteString("))")
		return sb.String(), args
	}
	sb.WriteString("VALUES ")
	row := "(?" + strings.Repeat(", ?", len(types)-1) + ")"
	for i := range rows {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(row)
	}
	sb.WriteString(")")
	return sb.String(), slices.Concat(rows...)
}

// Engine is a database engine this package speaks. The dsn chooses it, in
// this one place (EngineOf): a new backend adds an Engine here.
type Engine string

const (
	SQLite     Engine = "sqlite"
	PostgreSQL Engine = "postgresql"
)

// EngineOf is the engine a dsn selects: PostgreSQL for a postgres:// or
// postgresql:// URL, SQLite (a file path) for anything else.
func EngineOf(dsn string) Engine {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return PostgreSQL
	}
	return SQLite
}

// WriteConcurrency is how many commit loops suit the engine: SQLite has
// one write connection, so more loops would only queue on it; PostgreSQL
// commits concurrently (--commit-workers documents both defaults).
func (e Engine) WriteConcurrency() int {
	if e == PostgreSQL {
		return 4
	}
	return 1
}

func isPostgresDSN(dsn string) bool { return EngineOf(dsn) == PostgreSQL }

// isUniqueViolation reports whether err is a unique or primary-key
// constraint failure.
func (d dialect) isUniqueViolation(err error) bool {
	if d == dialectPostgres {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

// isRetryable reports whether a failed transaction may succeed if run again
// from the start. On PostgreSQL several logic nodes write concurrently, so
// lock-order deadlocks and races on unique keys are expected now and then.
// SQLite has one writer per process; busy_timeout covers other processes.
func (d dialect) isRetryable(err error) bool {
	if d != dialectPostgres {
		return false
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "23505", "40001", "40P01":
		return true
	}
	return false
}

// openSQLite opens two handles on one file: a single connection for writes,
// so writers queue in database/sql instead of failing with SQLITE_BUSY, and
// a read-only pool that WAL lets run beside the writer.
func openSQLite(path string) (write, read *sql.DB, err error) {
	if strings.ContainsAny(path, "?#") {
		return nil, nil, fmt.Errorf("sqlstore: sqlite path %q must not contain '?' or '#'", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, nil, fmt.Errorf("sqlstore: create data directory: %w", err)
		}
	}
	if err := createPrivateFile(path); err != nil {
		return nil, nil, err
	}
	// synchronous=FULL: an ACK means the commit reached the disk, even in WAL
	// mode where NORMAL would only protect against application crashes.
	pragmas := []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(5000)", "foreign_keys(1)"}
	q := url.Values{"_pragma": pragmas}
	base := "file:" + path + "?"

	wq := url.Values{"_pragma": pragmas, "_txlock": {"immediate"}}
	write, err = sql.Open("sqlite", base+wq.Encode())
	if err != nil {
		return nil, nil, fmt.Errorf("sqlstore: open sqlite %q: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	q["_pragma"] = append(q["_pragma"], "query_only(1)")
	read, err = sql.Open("sqlite", base+q.Encode())
	if err != nil {
		write.Close()
		return nil, nil, fmt.Errorf("sqlstore: open sqlite %q: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	return write, read, nil
}

// openPostgres returns one pool used for both reads and writes.
func openPostgres(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: parse postgres dsn: %w", err)
	}
	// Generic plans: the statements over many rows take arrays, for which
	// a custom plan (one per execution) costs more to plan than to run, and
	// every lookup is written to plan as an index probe (pgappend.go). A
	// DSN's own plan_cache_mode (options=-cplan_cache_mode=...) wins.
	if _, set := cfg.RuntimeParams["plan_cache_mode"]; !set && !strings.Contains(cfg.RuntimeParams["options"], "plan_cache_mode") {
		cfg.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlstore: connect to postgres %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return db, nil
}
