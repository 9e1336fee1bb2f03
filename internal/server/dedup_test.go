package server

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/pgtest"
)

// postgresSchema returns a DSN for a fresh schema in MAGPIE_TEST_POSTGRES,
// dropped when the test ends (after the nodes it was given to stopped).
func postgresSchema(t *testing.T) string {
	t.Helper()
	return pgtest.Schema(t, "magpie_server")
}

// Fault scenario 10: one client message id sent at the same moment by two
// devices of one user, on different gateways, through two logic nodes
// sharing PostgreSQL, and again much later, is stored once with one seq.
func TestSameClientIDThroughTwoGatewaysAndTwoLogicNodes(t *testing.T) {
	logics, gws := clusterWith(t, 2, postgresSchema(t), "gw-a", "gw-b")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := "http://" + logics[0].HTTPAddr()
	for _, u := range []string{"alice", "bob"} {
		if _, err := client.Register(ctx, base, u, "password123"); err != nil {
			t.Fatal(err)
		}
	}
	// Round-robin on one logic node: consecutive logins alternate gateways.
	var devices []*client.Client
	for _, d := range []string{"phone", "laptop"} {
		c := client.New(client.Options{Server: base, Username: "alice", Password: "password123", Device: d})
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		devices = append(devices, c)
	}
	if a, b := gws["gw-a"].Gateway().Conns(), gws["gw-b"].Gateway().Conns(); a != 1 || b != 1 {
		t.Fatalf("alice's devices: %d on gw-a, %d on gw-b; want one on each", a, b)
	}

	const n = 30
	type result struct {
		ack client.Ack
		err error
	}
	results := make([][2]result, n)
	var wg sync.WaitGroup
	for i := range n {
		for d, c := range devices {
			wg.Go(func() {
				ack, err := c.Send(ctx, client.SendRequest{ToUser: "bob", Text: fmt.Sprint("m", i), ClientMsgID: fmt.Sprint("dup-", i)})
				results[i][d] = result{ack, err}
			})
		}
	}
	wg.Wait()
	var seqs []uint64
	for i, r := range results {
		a, b := r[0], r[1]
		if a.err != nil || b.err != nil {
			t.Fatalf("dup-%d: errors %v, %v", i, a.err, b.err)
		}
		if a.ack.ConversationID != b.ack.ConversationID || a.ack.Seq != b.ack.Seq {
			t.Fatalf("dup-%d ACKed twice differently: %+v and %+v", i, a.ack, b.ack)
		}
		if a.ack.Duplicate == b.ack.Duplicate {
			t.Fatalf("dup-%d: Duplicate %v and %v; want exactly one original", i, a.ack.Duplicate, b.ack.Duplicate)
		}
		seqs = append(seqs, a.ack.Seq)
	}
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v; want 1..%d, each once", seqs, n)
		}
	}

	// Bob, connecting afterwards, syncs each message exactly once.
	var mu sync.Mutex
	seen := map[string]int{}
	bob := client.New(client.Options{Server: "http://" + logics[1].HTTPAddr(), Username: "bob", Password: "password123",
		OnMessage: func(m client.Message) { mu.Lock(); seen[m.ClientMsgID]++; mu.Unlock() }})
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	waitFor(t, "bob has every message", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n })
	mu.Lock()
	for id, k := range seen {
		if k != 1 {
			t.Errorf("bob saw %s %d times", id, k)
		}
	}
	mu.Unlock()

	// Much later, from the other device: the original answer again.
	again, err := devices[1].Send(ctx, client.SendRequest{ToUser: "bob", Text: "m0", ClientMsgID: "dup-0"})
	if err != nil || !again.Duplicate || again.Seq != results[0][0].ack.Seq {
		t.Fatalf("dup-0 again: %+v, %v; want seq %d, duplicate", again, err, results[0][0].ack.Seq)
	}
}
