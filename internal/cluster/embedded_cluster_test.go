package cluster

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Three embedded servers form a JetStream cluster (as `magpie gateway
// --nats-listen --nats-cluster --nats-routes` do), the buckets get three
// replicas, and the registry and presence keep working when the server a
// gateway is attached to dies.
func TestEmbeddedThreeServerCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a JetStream cluster: a few seconds")
	}
	log := testLogger(t)
	// JetStream clusters only with configured routes on every server, so
	// the route ports are chosen up front.
	var clusterAddrs, routes []string
	for range 3 {
		a := freeAddr(t)
		clusterAddrs = append(clusterAddrs, a)
		routes = append(routes, "nats-route://"+a)
	}
	var servers []*server.Server
	for i := range 3 {
		ns, err := StartEmbedded(EmbeddedConfig{
			StoreDir:   t.TempDir(),
			ServerName: fmt.Sprintf("n%d", i),
			Listen:     "127.0.0.1:-1",
			Cluster:    clusterAddrs[i],
			Routes:     routes,
			Name:       "magpie-test",
		}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		servers = append(servers, ns)
	}
	eventually(t, 20*time.Second, "full mesh of routes", func() bool {
		for _, ns := range servers {
			if ns.NumRoutes() < 2 {
				return false
			}
		}
		return true
	})

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	const ttl = 10 * time.Second
	// The gateway and one logic node sit on different servers.
	a := startGateway(t, servers[1], "gw-a", ttl, 3)
	b := startGateway(t, servers[2], "gw-b", ttl, 3)
	logic := connect(t, servers[0])
	var view *PresenceView
	reg, err := WatchRegistry(ctx, logic, 3, ttl, func(id string) { view.ForgetGateway(ctx, id) }, log)
	if err != nil {
		t.Fatal(err)
	}
	view, err = WatchPresence(ctx, logic, 3, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both gateways live", func() bool { return len(reg.Live()) == 2 })
	if err := a.pw.Connected(ctx, conn(1, "gw-a", 1)); err != nil {
		t.Fatal(err)
	}
	if err := b.pw.Connected(ctx, conn(2, "gw-b", 1)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both users online", func() bool { return len(view.Online()) == 2 })

	// Kill gw-a's server: the replicated buckets survive on the other two,
	// and gw-a (whose client reconnects to a surviving server) stays.
	servers[1].Shutdown()
	eventually(t, 30*time.Second, "gw-a reconnected", func() bool { return a.nc.IsConnected() })
	eventually(t, 30*time.Second, "registry writable again", func() bool {
		pctx, c := context.WithTimeout(ctx, 2*time.Second)
		defer c()
		return a.reg.Put(pctx) == nil
	})
	if err := b.pw.Connected(ctx, conn(3, "gw-b", 2)); err != nil {
		t.Fatal(err)
	}
	// A watch whose stream lost its leader with the server may need the
	// stall detector to restart it (10 s), then a catch-up: allow for
	// that on a busy machine.
	eventually(t, 30*time.Second, "presence still followed", func() bool { return len(view.Online()) == 3 })
	if !reg.Alive("gw-a") || !reg.Alive("gw-b") {
		t.Fatalf("live gateways after a NATS server died: %s", ids(reg.Live()))
	}

	// A crash of gw-b is still seen across the cluster.
	b.kill()
	eventually(t, 30*time.Second, "gw-b's user offline", func() bool { // as above: watches may be restarting
		return len(view.Conns(2)) == 0 && len(view.Conns(3)) == 0 && len(view.Conns(1)) == 1
	})
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestEmbeddedClusterNeedsRoutesAndName(t *testing.T) {
	for _, cfg := range []EmbeddedConfig{
		{StoreDir: t.TempDir(), ServerName: "a", Cluster: "127.0.0.1:-1"},
		{StoreDir: t.TempDir(), Cluster: "127.0.0.1:-1", Routes: []string{"nats-route://127.0.0.1:1"}},
	} {
		if ns, err := StartEmbedded(cfg, testLogger(t)); err == nil {
			ns.Shutdown()
			t.Errorf("StartEmbedded(%+v) succeeded; want an error", cfg)
		}
	}
}
