// Package pgtest gives a test its own schema in the PostgreSQL that
// MAGPIE_TEST_POSTGRES names, so tests and test packages running in
// parallel against one database never meet.
package pgtest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Env names the DSN of the test database.
const Env = "MAGPIE_TEST_POSTGRES"

// Schema creates a fresh schema named prefix_<random hex> and returns a
// DSN whose search_path is it. The schema is dropped when the test ends:
// cleanups run last in, first out, so whatever the test opens on it after
// this call is closed first. Without Env the test is skipped, loudly.
func Schema(tb testing.TB, prefix string) string {
	tb.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		tb.Skipf("!!! %s is unset: this PostgreSQL test is SKIPPED. Set it to a DSN such as "+
			"postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run it.", Env)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := prefix + "_" + hex.EncodeToString(rnd[:])
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatalf("open admin connection: %v", err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		tb.Fatalf("parse %s: %v", Env, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
