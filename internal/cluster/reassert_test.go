package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// lostReplyKV is a bucket whose Put of one key never gets an answer, the
// way a request does when its NATS connection is cut and made again while
// it is out; every other Put succeeds.
type lostReplyKV struct {
	jetstream.KeyValue // unused methods panic
	lost               string

	mu   sync.Mutex
	puts []string
}

func (kv *lostReplyKV) Put(ctx context.Context, key string, _ []byte) (uint64, error) {
	if key == kv.lost {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	kv.mu.Lock()
	kv.puts = append(kv.puts, key)
	kv.mu.Unlock()
	return 1, nil
}

// A write whose reply is lost must not hold the round until its context
// ends: it fails after reassertOpTimeout and the other entries are written.
func TestReassertBoundsEachWrite(t *testing.T) {
	kv := &lostReplyKV{lost: "u1.gw-a.1"}
	p := &PresenceWriter{kv: kv, stale: map[string]struct{}{}, entries: map[string][]byte{
		"u1.gw-a.1": nil, "u2.gw-a.2": nil, "u3.gw-a.3": nil,
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	err := p.Reassert(ctx)
	if err == nil {
		t.Fatal("Reassert with one write unanswered returned no error")
	}
	// An upper bound far from both 5 s and the round's 2 minutes: only a
	// write held until the round's context ends can fail it.
	if took := time.Since(start); took > time.Minute {
		t.Fatalf("Reassert took %v: the unanswered write held the round", took)
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if len(kv.puts) != 2 {
		t.Fatalf("written %v, want the two other entries", kv.puts)
	}
}
