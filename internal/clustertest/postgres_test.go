package clustertest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The private server counts the statements the run's database executes
// (pg_stat_statements, when the installation has it): every execution of
// a statement, BEGIN and COMMIT not, and nothing of another database.
func TestPrivatePostgresCountsStatements(t *testing.T) {
	if os.Getenv("MAGPIE_TEST_POSTGRES") == "" {
		t.Skip("MAGPIE_TEST_POSTGRES not set (the PostgreSQL tests are off)")
	}
	bin, err := findPGBin()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topo := &Topology{cfg: Config{Dir: t.TempDir()}}
	topo.cfg.defaults()
	defer topo.Close()
	addr, err := topo.ports.addr()
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.startPostgres(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if err := topo.createDB(ctx); err != nil {
		t.Fatal(err)
	}
	if want := hasStatStatements(bin); topo.statements != want {
		t.Fatalf("statements counted: %v, but the installation at %s has pg_stat_statements: %v", topo.statements, bin, want)
	}
	admin, err := pgx.Connect(ctx, topo.cfg.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	before, err := topo.dbCounters(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	run, err := pgx.Connect(ctx, topo.DB)
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close(ctx)
	tx, err := run.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	for i := range n {
		if _, err := tx.Exec(ctx, "SELECT $1::int", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// The admin connection's own statements are another database's.
	for range 10 {
		if _, err := admin.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	}
	after, err := topo.dbCounters(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if !topo.statements {
		if after.calls != 0 || before.calls != 0 {
			t.Fatalf("without pg_stat_statements the counters read calls %d, %d", before.calls, after.calls)
		}
		if s := (DBRates{TPS: 1, QPS: -1}).String(); s != "1 transactions/s (statements/s not measured: no pg_stat_statements)" {
			t.Fatalf("unmeasured rates read %q", s)
		}
		return
	}
	if got := after.calls - before.calls; got != n {
		t.Fatalf("the run's database executed %d statements (in one transaction), pg_stat_statements counted %d", n, got)
	}
}
