//go:build e2e

package e2e

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// TestClusterPausedLogicNode stops the only logic node (SIGSTOP) for
// three registry TTLs and lets it go on. It must not bury the gateway its
// receivers are on (the gateway heartbeated all along): a message sent
// after the pause reaches the online receiver live within 2 s, not at the
// SDK's next resync.
func TestClusterPausedLogicNode(t *testing.T) {
	topo := clusterTopology(t, 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	server := topo.LogicURLs()[0]
	for _, u := range []string{"alice", "bob"} {
		if _, err := client.Register(ctx, server, u, "password-"+u); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var got []string
	bob := client.New(client.Options{Server: server, Username: "bob", Password: "password-bob", Device: "b",
		OnMessage: func(m client.Message) { mu.Lock(); got = append(got, m.Text); mu.Unlock() }})
	alice := client.New(client.Options{Server: server, Username: "alice", Password: "password-alice", Device: "a"})
	for _, c := range []*client.Client{bob, alice} {
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	received := func(text string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, g := range got {
			if g == text {
				return true
			}
		}
		return false
	}
	sendAndWait := func(text string, within time.Duration) {
		t.Helper()
		sctx, c := context.WithTimeout(ctx, 30*time.Second)
		defer c()
		var err error
		for { // the logic node may still be catching up on its NATS link
			if _, err = alice.SendText(sctx, "bob", text); err == nil || sctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		acked := time.Now()
		for !received(text) {
			if time.Since(acked) > within {
				t.Fatalf("%q not received live within %v of its ACK\n%s", text, within, topo.Logs(40))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	sendAndWait("before", 2*time.Second)

	lg := topo.Logic[0]
	lg.Signal(syscall.SIGSTOP)
	time.Sleep(3 * 5 * time.Second) // three registry TTLs (the topology's default 5 s)
	lg.Signal(syscall.SIGCONT)
	for i := range 5 {
		sendAndWait("after-"+string(rune('0'+i)), 2*time.Second)
		time.Sleep(time.Second) // across the node's sweeps and probes after the wake
	}
	if logs := topo.Logs(200); strings.Contains(logs, "gateway expired") || strings.Contains(logs, "gateway unreachable") {
		t.Errorf("the logic node buried its live gateway after the pause:\n%s", logs)
	}
}
