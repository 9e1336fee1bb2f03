//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/checker"
	"github.com/magpie-im/magpie/internal/clustertest"
)

// TestClusterFaults runs the multi-process cluster (3 NATS servers with
// JetStream, 3 gateways, 2 logic nodes, the run's own PostgreSQL) under a
// checked load through SIGTERM and kill -9 of a gateway, kill -9 of a
// logic node, an immediate restart of PostgreSQL, kill -9 of a NATS
// server, a pause of another, network partitions and two crash points of
// a logic node (a binary built with -tags faulthooks), and requires the checker's must-be-zero figures to be zero and
// the cluster to heal: every device of a gone gateway ready again, every
// device caught up after each fault, no stuck SDK Client replaced by the
// watchdog. `magpie check` over the recorded history must agree.
//
// Runs when MAGPIE_TEST_POSTGRES is set (the PostgreSQL tests are on), but
// never uses that server: it starts a private one with initdb into a
// temporary directory, so the restart fault crashes only its own.
// Sizes: MAGPIE_CLUSTER_USERS, MAGPIE_CLUSTER_RATE (per device),
// MAGPIE_CLUSTER_SETTLE, MAGPIE_CLUSTER_CHURN (scenario 11, seconds),
// MAGPIE_CLUSTER_MQTT (users with an MQTT device, default 4); ports: MAGPIE_CLUSTER_PORT_BASE (every port from
// there on; default free ephemeral ports); another nats-server binary:
// MAGPIE_CLUSTER_NATS.
func TestClusterFaults(t *testing.T) {
	if os.Getenv("MAGPIE_TEST_POSTGRES") == "" {
		t.Skip("MAGPIE_TEST_POSTGRES not set")
	}
	dir, err := os.MkdirTemp("", "magpie-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	// A failure prints the error lines of the process logs (CI keeps the
	// output, not the directory), then the failure again, so the end of
	// the output says what failed.
	var failure string
	fatalf := func(format string, a ...any) {
		t.Helper()
		failure = fmt.Sprintf(format, a...)
		t.Fatal(failure)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if tails := clustertest.ErrorLogTails(dir, 20); tails != "" {
				t.Logf("process logs with errors (the last 20 error lines of each, and its last panic):\n%s", tails)
			}
			if failure != "" {
				t.Logf("failed: %.4000s", failure)
			}
		}
		if t.Failed() || os.Getenv("MAGPIE_CLUSTER_KEEP") != "" {
			t.Logf("process logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	// MAGPIE_CLUSTER_NATS runs another nats-server binary (to check the
	// minimum version in docs/operations.md); default: the one in go.mod.
	natsBin := os.Getenv("MAGPIE_CLUSTER_NATS")
	if natsBin == "" {
		natsBin = filepath.Join(dir, "nats-server")
		build := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build nats-server: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command(natsBin, "--version").CombinedOutput(); err == nil {
		t.Logf("%s", strings.TrimSpace(string(out)))
	}
	// The crash points (scenario 9) need a magpie with the test hooks.
	hooks := filepath.Join(dir, "magpie-faulthooks")
	if out, err := exec.Command("go", "build", "-tags", "faulthooks", "-o", hooks, "../cmd/magpie").CombinedOutput(); err != nil {
		t.Fatalf("build magpie -tags faulthooks: %v\n%s", err, out)
	}
	// The run may take until 2 minutes before the test binary's deadline
	// (go test -timeout; scripts/cluster-test.sh: MAGPIE_CLUSTER_TIMEOUT),
	// so that it fails with its own report rather than the binary's panic.
	budget := 20 * time.Minute
	if d, ok := t.Deadline(); ok {
		budget = time.Until(d) - 2*time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	var log strings.Builder
	cfg := clustertest.RunConfig{
		Topology: clustertest.Config{Magpie: binary, MagpieHooks: hooks, NATS: natsBin, Dir: dir, PortBase: envInt("MAGPIE_CLUSTER_PORT_BASE", 0)},
		Load: clustertest.LoadConfig{
			Users: envInt("MAGPIE_CLUSTER_USERS", 16), DevicesPerUser: 2,
			Rate: float64(envInt("MAGPIE_CLUSTER_RATE", 4)), GroupSize: 4,
			MQTTUsers: envInt("MAGPIE_CLUSTER_MQTT", 4),
		},
		Settle:     time.Duration(envInt("MAGPIE_CLUSTER_SETTLE", 4)) * time.Second,
		Seed:       int64(envInt("MAGPIE_CLUSTER_SEED", 0)),
		Mixed:      envInt("MAGPIE_CLUSTER_MIXED", 6),
		Soak:       time.Duration(envInt("MAGPIE_CLUSTER_SOAK", 30)) * time.Second,
		StormConns: envInt("MAGPIE_CLUSTER_STORM", 1000),
		SlowBurst:  envInt("MAGPIE_CLUSTER_SLOW_BURST", 1200),
		Churn:      time.Duration(envInt("MAGPIE_CLUSTER_CHURN", 20)) * time.Second,
		Out:        &testWriter{t: t, b: &log},
		History:    filepath.Join(dir, "history.jsonl"),
	}
	res, err := clustertest.Run(ctx, cfg)
	if err != nil {
		fatalf("cluster run: %v", err)
	}
	t.Logf("history: %s (`magpie check` it; kept with MAGPIE_CLUSTER_KEEP=1 or on failure)", cfg.History)
	var table strings.Builder
	res.Report.Print(&table)
	t.Logf("checker (groups: %d, SDK clients replaced by the watchdog: %d):\n%s", res.Groups, res.Replaced, table.String())
	var phases strings.Builder
	clustertest.PrintPhases(&phases, res.Phases)
	t.Logf("latency per phase (sends invoked in it):\n%s", phases.String())
	t.Logf("mixed schedule: seed %d (replay: scripts/cluster-test.sh --seed %d)", res.Seed, res.Seed)
	if res.Slow != nil {
		t.Logf("slow consumer: %s", res.Slow)
	}
	if res.Storm != nil {
		t.Logf("reconnect storm: %s", res.Storm)
	}
	if res.Churn != nil {
		t.Logf("multi-device churn: %s", res.Churn)
	}
	if res.MQTTChurn != nil {
		t.Logf("multi-device churn, MQTT: %s", res.MQTTChurn)
	}
	if res.MQTTAway != nil {
		t.Logf("MQTT persistent session: %s", res.MQTTAway)
	}
	for _, f := range res.MQTT {
		t.Logf("MQTT device %s", f)
	}
	for _, f := range res.Soak {
		t.Logf("soak %s", f)
	}
	for _, c := range res.CrashRetries {
		t.Logf("crash point %s: crashed %v, retries answered as duplicates with the stored seq: %d", c.Point, c.Crashed, c.DupAcks)
	}
	for _, f := range res.SameID {
		t.Logf("same client id, %s: %d sends, %d answered as duplicates with the stored seq", f.When, f.Sent, f.Duplicates)
	}
	for _, f := range res.Failover {
		t.Logf("failover %s: %d devices, 99%% ready after %v, all after %v", f.Fault, f.Affected, f.P99, f.All)
	}
	if v := res.Report.Violations(); len(v) > 0 {
		// The examples ride in the failure line too: CI keeps only the
		// end of a long log.
		fatalf("checker violations: %s; process logs are in %s; examples:\n  %s",
			strings.Join(v, ", "), dir, strings.Join(res.Report.Examples, "\n  "))
	}
	if err := checkHistory(cfg.History, res.Report); err != nil {
		fatalf("%v", err)
	}
	if res.Report.Acknowledged == 0 {
		fatalf("nothing was acknowledged")
	}
	if len(res.Problems) > 0 {
		fatalf("the cluster did not heal: %s; process logs are in %s", strings.Join(res.Problems, "; "), dir)
	}
}

// checkHistory runs `magpie check --json` over the run's recorded history
// and requires the same figures as the in-process checker.
func checkHistory(file string, want *checker.Report) error {
	out, err := exec.Command(binary, "check", "--json", file).Output()
	if err != nil {
		return fmt.Errorf("magpie check %s: %v\n%s", file, err, out)
	}
	var got struct {
		OK     bool            `json:"ok"`
		Report *checker.Report `json:"report"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		return fmt.Errorf("magpie check --json: %v\n%s", err, out)
	}
	g, w := got.Report, want
	if !got.OK || g.Attempted != w.Attempted || g.Acknowledged != w.Acknowledged || g.Unknown != w.Unknown ||
		g.Recovered != w.Recovered || g.Failed != w.Failed || g.Ack.N != w.Ack.N || g.Live.N != w.Live.N {
		return fmt.Errorf("magpie check over the history disagrees with the run's checker:\n got %+v\nwant %+v", g, w)
	}
	return nil
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// testWriter logs progress lines as they come and keeps them.
type testWriter struct {
	t *testing.T
	b *strings.Builder
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	w.b.Write(p)
	return len(p), nil
}

// clusterTopology builds nats-server and starts a topology for the
// benchmark runs below.
func clusterTopology(t *testing.T, gateways, logic int, opts ...func(*clustertest.Config)) *clustertest.Topology {
	t.Helper()
	if os.Getenv("MAGPIE_TEST_POSTGRES") == "" {
		t.Skip("MAGPIE_TEST_POSTGRES not set")
	}
	dir := t.TempDir()
	natsBin := filepath.Join(dir, "nats-server")
	if out, err := exec.Command("go", "build", "-o", natsBin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		t.Fatalf("build nats-server: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := clustertest.Config{
		Magpie: binary, NATS: natsBin, Dir: dir, PortBase: envInt("MAGPIE_CLUSTER_PORT_BASE", 0),
		Gateways: gateways, Logic: logic, Log: &testWriter{t: t, b: &strings.Builder{}},
	}
	for _, o := range opts {
		o(&cfg)
	}
	topo, err := clustertest.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(topo.Close)
	return topo
}

// TestClusterW6 is benchmark W6 (docs/benchmarks.md): kill -9 a gateway
// holding MAGPIE_W6_CONNS connections (default 16000) and time their
// re-authentication on the other gateways, with a checked load alongside.
// A measurement, not a CI test: it runs only with MAGPIE_CLUSTER_BENCH=w6.
func TestClusterW6(t *testing.T) {
	if os.Getenv("MAGPIE_CLUSTER_BENCH") != "w6" {
		t.Skip("set MAGPIE_CLUSTER_BENCH=w6 to run")
	}
	topo := clusterTopology(t, 3, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	res, err := clustertest.RunW6(ctx, topo, clustertest.W6Config{Conns: envInt("MAGPIE_W6_CONNS", 16000)},
		clustertest.LoadConfig{Users: 8, DevicesPerUser: 2, Rate: 4})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	res.Report.Report.Print(&table)
	t.Logf("W6: %d conns (set up at %.0f conn/s); first EOF %v after kill; re-authenticated p50 %v p90 %v p99 %v all %v; retries %d, failed %d\nchecked load alongside (SDK clients replaced: %d):\n%s",
		res.Conns, res.ConnectRate, res.Detected, res.P50, res.P90, res.P99, res.All, res.Retries, res.Failed, res.Report.Replaced, table.String())
	if v := res.Report.Report.Violations(); len(v) > 0 {
		t.Errorf("checker violations: %v", v)
	}
}

// TestClusterW5 is benchmark W5 (docs/benchmarks.md): the same open-loop
// 1:1 load with every pair split across two gateways, then with both ends
// on one gateway, then against a single `magpie serve` on the same
// PostgreSQL. A measurement: it runs only with MAGPIE_CLUSTER_BENCH=w5.
// MAGPIE_W5_RATE (msgs/s in total, default 2000), MAGPIE_W5_PAIRS (100).
func TestClusterW5(t *testing.T) {
	if os.Getenv("MAGPIE_CLUSTER_BENCH") != "w5" {
		t.Skip("set MAGPIE_CLUSTER_BENCH=w5 to run")
	}
	topo := clusterTopology(t, 2, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cfg := clustertest.W5Config{Pairs: envInt("MAGPIE_W5_PAIRS", 100), Rate: float64(envInt("MAGPIE_W5_RATE", 2000))}
	server := topo.LogicURLs()[0]
	a, b := topo.Gateways[0], topo.Gateways[1]
	var results []*clustertest.W5Result
	for _, run := range []struct {
		label    string
		from, to *clustertest.Node
	}{
		{"cluster, pairs split across 2 gateways", a, b},
		{"cluster, both ends on one gateway", a, a},
	} {
		r, err := clustertest.RunW5(ctx, run.label, server, run.from, run.to, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		results = append(results, r)
	}
	for _, n := range append(topo.Gateways, topo.Logic...) {
		n.Kill()
	}
	single, err := topo.StartSingle(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer single.Kill()
	r, err := clustertest.RunW5(ctx, "single node (magpie serve, PostgreSQL)", "http://"+single.HTTP, nil, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	results = append(results, r)
	for _, r := range results {
		if r.Lost != 0 {
			t.Errorf("%s: %d ACKed messages never shown", r.Label, r.Lost)
		}
	}
}
