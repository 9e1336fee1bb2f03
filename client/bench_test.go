package client

import (
	"context"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/testserver"
)

// BenchmarkSendReceive sends b.N messages from alice to bob, 8 in flight,
// and waits until bob's OnMessage has seen them all. The SDK's goroutines
// carry the pprof label side=sdk (goroutines inherit their creator's
// labels), so a CPU profile separates the SDK's cost from the in-process
// server's:
//
//	go test -run '^$' -bench SendReceive -cpuprofile cpu.out ./client/
//	go tool pprof -tagfocus side=sdk -top cpu.out
func BenchmarkSendReceive(b *testing.B) {
	unlimited := func(c *config.Config) { c.ConnRate, c.UserSendRate = 1e9, 0 }
	srv := testserver.Start(b, []testserver.Options{unlimited}, "alice", "bob")
	var got atomic.Int64
	all := make(chan struct{})
	var want atomic.Int64
	want.Store(-1)
	var alice, bob *Client
	pprof.Do(context.Background(), pprof.Labels("side", "sdk"), func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		opts := func(user string) Options {
			return Options{Server: srv.URL, Username: user, Password: "pw-" + user}
		}
		bo := opts("bob")
		bo.OnMessage = func(Message) {
			if got.Add(1) == want.Load() {
				close(all)
			}
		}
		alice, bob = New(opts("alice")), New(bo)
		for _, c := range []*Client{alice, bob} {
			if err := c.Connect(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	defer alice.Close()
	defer bob.Close()
	want.Store(int64(b.N))
	b.ResetTimer()
	pprof.Do(context.Background(), pprof.Labels("side", "sdk"), func(ctx context.Context) {
		const inflight = 8
		var next atomic.Int64
		var wg sync.WaitGroup
		for range inflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(b.N) {
					if _, err := alice.SendText(ctx, "bob", "a sixty-four byte text, about what the benchmarks send each time"); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	})
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		b.Fatalf("bob got %d of %d messages", got.Load(), b.N)
	}
}
