package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// A private PostgreSQL: the run's own server, made with initdb in a
// temporary directory and run as a child process, so the restart fault
// crashes only it and never a server anyone else uses. Started when
// Config.Postgres is empty; stopped and deleted by Close.

// findPGBin is the bin directory of the newest PostgreSQL under
// /usr/lib/postgresql (Debian's layout), or of the initdb on PATH.
func findPGBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(dirs, func(a, b string) int { // numerically: 9 < 15
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return va - vb
	})
	if len(dirs) > 0 {
		return filepath.Dir(dirs[len(dirs)-1]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/*/bin or on PATH: install postgresql")
}

// pgCredential is who the server runs as: PostgreSQL refuses to run as
// root, so as root it is the postgres account.
func pgCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres account: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// startPostgres initdbs a data directory and starts the server on a port
// from the run's range; t.cfg.Postgres becomes its admin URL.
func (t *Topology) startPostgres(ctx context.Context, addr string) error {
	bin := t.cfg.PGBin
	if bin == "" {
		var err error
		if bin, err = findPGBin(); err != nil {
			return err
		}
	}
	cred, err := pgCredential()
	if err != nil {
		return err
	}
	// Its own temporary directory: the run's Dir may not be reachable by
	// the postgres account.
	dir, err := os.MkdirTemp("", "magpie-pg-")
	if err != nil {
		return err
	}
	t.pgDir = dir
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %v\n%s", err, out)
	}
	host, port, _ := net.SplitHostPort(addr)
	t.pg = &Proc{Name: "postgres", log: filepath.Join(t.cfg.Dir, "postgres.log"), cred: cred, args: []string{
		filepath.Join(bin, "postgres"), "-D", data, "-p", port, "-c", "listen_addresses=" + host,
		"-c", "unix_socket_directories=" + dir, "-c", "max_connections=300",
		// fsync off: the faults crash processes, not the machine, and the
		// kernel keeps what was written; it spares the shared disk.
		"-c", "fsync=off", "-c", "full_page_writes=off",
	}}
	statements := hasStatStatements(bin)
	if statements {
		// Counts every executed statement (calls), so the reconnect storm
		// can report statements per second. track_utility off: BEGIN,
		// COMMIT, SET and the like are not counted (transactions are, by
		// pg_stat_database); max raised so that Magpie's statements are
		// not evicted (dbSampler reports it if some were).
		t.pg.args = append(t.pg.args, "-c", "shared_preload_libraries=pg_stat_statements",
			"-c", "pg_stat_statements.track_utility=off", "-c", "pg_stat_statements.max=10000")
	}
	if err := t.pg.start(); err != nil {
		return err
	}
	t.cfg.Postgres = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", addr)
	if err := waitPostgres(ctx, t.cfg.Postgres, t.pg, 60*time.Second); err != nil {
		return err
	}
	how := "no pg_stat_statements in this installation: statements per second are not measured"
	if statements {
		// In the admin database: the view shows every database's
		// statements to a superuser, and the run's own schema stays as
		// Magpie makes it.
		conn, err := pgx.Connect(ctx, t.cfg.Postgres)
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("postgres: create extension pg_stat_statements: %w", err)
		}
		t.statements = true
		how = "pg_stat_statements loaded"
	}
	t.logf("postgres: private server %s in %s (%s; %s)", addr, dir, bin, how)
	return nil
}

// hasStatStatements reports whether the PostgreSQL installation of bin has
// the pg_stat_statements extension (its library and control file, where
// its pg_config says they go).
func hasStatStatements(bin string) bool {
	out, err := exec.Command(filepath.Join(bin, "pg_config"), "--pkglibdir", "--sharedir").Output()
	if err != nil {
		return false
	}
	dirs := strings.Fields(string(out))
	if len(dirs) != 2 {
		return false
	}
	for _, f := range []string{filepath.Join(dirs[0], "pg_stat_statements.so"), filepath.Join(dirs[1], "extension", "pg_stat_statements.control")} {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// waitPostgres waits until url accepts connections.
func waitPostgres(ctx context.Context, url string, p *Proc, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if p != nil && !p.Running() {
			return fmt.Errorf("postgres exited; see %s", p.log)
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, url)
		cancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("postgres not accepting connections within %v: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RestartPostgres crashes the run's private PostgreSQL the way `pg_ctl
// stop -m immediate` does (SIGQUIT: no checkpoint, crash recovery on the
// next start), starts it again and waits until it accepts connections.
// It refuses to touch a server the run did not start.
func (t *Topology) RestartPostgres(ctx context.Context) error {
	if t.pg == nil {
		return errors.New("the PostgreSQL restart fault needs the run's private server (Config.Postgres empty); it never restarts a server the run did not start")
	}
	t.pg.Signal(syscall.SIGQUIT)
	if !t.pg.Wait(30 * time.Second) {
		t.pg.Kill()
	}
	if err := t.pg.start(); err != nil {
		return err
	}
	return waitPostgres(ctx, t.DB, t.pg, 60*time.Second)
}

// stopPostgres shuts the private server down (fast mode, so it removes
// its shared memory) and deletes its directory.
func (t *Topology) stopPostgres() {
	if t.pg != nil {
		t.pg.Signal(syscall.SIGINT)
		if !t.pg.Wait(15 * time.Second) {
			t.pg.Kill()
		}
	}
	if t.pgDir != "" {
		os.RemoveAll(t.pgDir)
		t.pgDir = ""
	}
}
