package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/cluster"
)

// Every role's goroutines end with Shutdown: none outlives the node
// (the watchers, the registrar, the presence reassert, the auths, the
// listeners' serve loops).
func TestShutdownLeavesNoGoroutines(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(t *testing.T, nats string, roles Roles) *Node {
		t.Helper()
		cfg := testConfig(t, t.TempDir())
		cfg.NATS = nats
		cfg.TokenSecret = "0123456789abcdef0123456789abcdef"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		n, err := Start(ctx, cfg, roles, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopNode(t, n) })
		return n
	}
	externalNATS := func(t *testing.T) string {
		t.Helper()
		ns, err := cluster.StartEmbedded(cluster.EmbeddedConfig{StoreDir: t.TempDir(), ServerName: "t", Listen: "127.0.0.1:-1"}, quiet)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() }) // after the nodes' (cleanups run last first)
		return ns.ClientURL()
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T)
	}{
		{"serve", func(t *testing.T) {
			n := start(t, "", Roles{Gateway: true, Logic: true})
			c := rawTCP(t, n)
			_ = c.Close()
			n.reassert.trigger() // as a NATS reconnect would
			stopNode(t, n)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil { // twice is safe
				t.Fatalf("second shutdown: %v", err)
			}
		}},
		{"gateway only", func(t *testing.T) {
			n := start(t, externalNATS(t), Roles{Gateway: true})
			_ = rawTCP(t, n).Close()
			n.reassert.trigger()
		}},
		{"logic only", func(t *testing.T) {
			n := start(t, externalNATS(t), Roles{Logic: true})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := client.Register(ctx, "http://"+n.HTTPAddr(), "alice", "password123"); err != nil {
				t.Fatal(err)
			}
		}},
		{"cluster", func(t *testing.T) {
			logic, gws := clusterOf(t, "gw-a", "gw-b")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := client.Register(ctx, "http://"+logic.HTTPAddr(), "alice", "password123"); err != nil {
				t.Fatal(err)
			}
			// A login, an auth over the bus, a presence entry and a
			// reassert on the gateway that got it.
			c := client.New(client.Options{Server: "http://" + logic.HTTPAddr(), Username: "alice", Password: "password123"})
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			for _, g := range gws {
				g.reassert.trigger()
			}
			c.Close()
		}},
	} {
		before := runtime.NumGoroutine()
		if !t.Run(tc.name, tc.run) {
			continue
		}
		http.DefaultClient.CloseIdleConnections()
		waitGoroutines(t, tc.name, before)
	}
}

// waitGoroutines waits until no more than a couple of goroutines above
// before are left (the runtime's and the test framework's come and go).
func waitGoroutines(t *testing.T, name string, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%s: goroutines: %d before, %d after\n%s", name, before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
