package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// startServer starts an in-process NATS server (no listener) and shuts it
// down at the end of the test.
func startServer(t *testing.T) *server.Server {
	t.Helper()
	ns, err := StartEmbedded(EmbeddedConfig{StoreDir: t.TempDir(), ServerName: "test"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// connect opens a connection to ns (in process when ns does not listen).
func connect(t *testing.T, ns *server.Server) *nats.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := ConnectOptions{Embedded: ns, Name: t.Name()}
	if ns.Addr() != nil {
		o = ConnectOptions{URLs: ns.ClientURL(), Name: t.Name()}
	}
	nc, err := Connect(ctx, o, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakeGateway is what a gateway process puts on the bus: a registry entry
// kept fresh, a ping responder and presence entries, all on its own
// connection, so closing that connection looks like kill -9.
type fakeGateway struct {
	id        string
	firstConn uint64 // GatewayInfo.first_conn: this run's connection ids are above it
	nc        *nats.Conn
	reg       *Registrar

	mu       sync.Mutex // guards draining and conns
	draining bool
	conns    int64

	pw   *PresenceWriter
	stop context.CancelFunc
	done chan struct{}
}

func startGateway(t *testing.T, ns *server.Server, id string, ttl time.Duration, replicas int) *fakeGateway {
	t.Helper()
	return startGatewayRun(t, ns, id, ttl, replicas, 0)
}

// startGatewayRun is startGateway for one run of a gateway whose
// connection ids are above firstConn.
func startGatewayRun(t *testing.T, ns *server.Server, id string, ttl time.Duration, replicas int, firstConn uint64) *fakeGateway {
	t.Helper()
	nc := connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := &fakeGateway{id: id, firstConn: firstConn, nc: nc, done: make(chan struct{})}
	var err error
	if g.reg, err = NewRegistrar(ctx, nc, replicas, ttl, g.info, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	if g.pw, err = NewPresenceWriter(ctx, nc, replicas); err != nil {
		t.Fatal(err)
	}
	if _, err := ServePing(nc, id); err != nil {
		t.Fatal(err)
	}
	if err := g.reg.Put(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	g.stop = rcancel
	go func() { defer close(g.done); g.reg.Run(rctx) }()
	t.Cleanup(func() { rcancel(); <-g.done })
	return g
}

// kill stops the gateway's connection without deregistering: a crash.
func (g *fakeGateway) kill() { g.nc.Close(); g.stop(); <-g.done }

func (g *fakeGateway) info() *clusterpb.GatewayInfo {
	g.mu.Lock()
	defer g.mu.Unlock()
	return &clusterpb.GatewayInfo{Id: g.id, Addrs: map[string]string{"tcp": "127.0.0.1:1", "ws": "ws://" + g.id}, Conns: g.conns, Draining: g.draining, FirstConn: g.firstConn}
}

// set changes the entry and publishes it at once.
func (g *fakeGateway) set(t *testing.T, draining bool, conns int64) {
	t.Helper()
	g.mu.Lock()
	g.draining, g.conns = draining, conns
	g.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.reg.Put(ctx); err != nil {
		t.Fatal(err)
	}
}

func conn(user int64, gw string, id uint64) *clusterpb.ConnRef {
	return &clusterpb.ConnRef{UserId: user, Gateway: gw, Conn: id, Device: fmt.Sprintf("d%d", id)}
}
