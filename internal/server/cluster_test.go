package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/cluster"
	"github.com/magpie-im/magpie/internal/config"
)

// clusterOf starts a NATS server with a client port (an "external" NATS
// for the nodes), one logic node and gateways with the given ids, all in
// this process but talking only through NATS, as `magpie logic` and
// `magpie gateway` processes do.
func clusterOf(t *testing.T, gateways ...string) (logic *Node, gws map[string]*Node) {
	t.Helper()
	logics, gws := clusterWith(t, 1, "", gateways...)
	return logics[0], gws
}

// clusterWith is clusterOf with nLogic logic nodes on the database at dsn
// (empty: one SQLite file, for one logic node).
func clusterWith(t *testing.T, nLogic int, dsn string, gateways ...string) (logics []*Node, gws map[string]*Node) {
	t.Helper()
	return clusterWithConfig(t, nLogic, dsn, nil, gateways...)
}

// clusterWithConfig is clusterWith with tweak (if not nil) applied to
// every node's configuration.
func clusterWithConfig(t *testing.T, nLogic int, dsn string, tweak func(*config.Config), gateways ...string) (logics []*Node, gws map[string]*Node) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ns, err := cluster.StartEmbedded(cluster.EmbeddedConfig{StoreDir: t.TempDir(), ServerName: "t", Listen: "127.0.0.1:-1"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	base := func() config.Config {
		cfg := testConfig(t, t.TempDir())
		cfg.NATS = ns.ClientURL()
		cfg.RegistryTTL = 3 * time.Second
		cfg.TokenSecret = "0123456789abcdef0123456789abcdef"
		if tweak != nil {
			tweak(&cfg)
		}
		return cfg
	}
	start := func(cfg config.Config, roles Roles) *Node {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := Start(ctx, cfg, roles, quiet)
		if err != nil {
			t.Fatalf("start: %v", err)
		}
		t.Cleanup(func() { stopNode(t, n) })
		return n
	}
	for range nLogic {
		cfg := base()
		cfg.Store = dsn
		if dsn == "" {
			cfg.Store = filepath.Join(cfg.Data, "magpie.db")
		}
		logics = append(logics, start(cfg, Roles{Logic: true}))
	}
	gws = map[string]*Node{}
	for _, id := range gateways {
		cfg := base()
		cfg.GatewayID = id
		cfg.DrainTimeout = 10 * time.Second
		gws[id] = start(cfg, Roles{Gateway: true})
	}
	for _, l := range logics {
		waitFor(t, "every gateway routable", func() bool { return len(l.reg.Live()) == len(gateways) })
	}
	return logics, gws
}

// loginGateway logs user in over HTTP and returns the gateway id it got.
func loginGateway(t *testing.T, logic *Node, user string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": user, "password": "password123", "device": "probe"})
	resp, err := http.Post("http://"+logic.HTTPAddr()+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Gateway struct{ ID string } `json:"gateway"`
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Gateway.ID
}

// SIGTERM on a gateway (Shutdown): it is marked draining in the registry
// before its clients are kicked with reconnect set, logins stop going
// there, and it exits as soon as its clients are gone.
func TestGatewayDrainLeavesRegistryFirst(t *testing.T) {
	logic, gws := clusterOf(t, "gw-a", "gw-b")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.Register(ctx, "http://"+logic.HTTPAddr(), "alice", "password123"); err != nil {
		t.Fatal(err)
	}
	// Round-robin: two logins cover both gateways; connect one client to
	// each.
	kicked := make(chan []string, 4)
	for range 2 {
		c := client.New(client.Options{
			Server: "http://" + logic.HTTPAddr(), Username: "alice", Password: "password123",
			BackoffMin: time.Hour, // stay down after the kick: we only look at what the server did
			OnState: func(st client.State, err error) {
				if st == client.StateReconnecting {
					// What would a login routed right now get?
					kicked <- ids(logic)
				}
			},
		})
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	a := gws["gw-a"]
	waitFor(t, "a client on gw-a", func() bool { return a.Gateway().Conns() == 1 })

	start := time.Now()
	done := make(chan error, 1)
	go func() {
		sctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		done <- a.Shutdown(sctx)
	}()
	select {
	case live := <-kicked:
		if len(live) != 1 || live[0] != "gw-b" {
			t.Fatalf("when gw-a's client was kicked, logins could still go to %v; want only gw-b", live)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client on gw-a was not kicked")
	}
	for range 4 {
		if got := loginGateway(t, logic, "alice"); got != "gw-b" {
			t.Fatalf("login during/after drain routed to %s", got)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("drain took %v with its only client gone at once; want well under the 10s drain timeout", took)
	}
	waitFor(t, "gw-a gone from the registry", func() bool { return !logic.reg.Alive("gw-a") })
}

func ids(logic *Node) []string {
	var out []string
	for _, g := range logic.reg.Live() {
		out = append(out, g.Id)
	}
	return out
}
