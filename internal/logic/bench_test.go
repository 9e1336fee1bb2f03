package logic

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/internal/store/sqlstore"
)

// memCommits answers the commit loops' two calls from memory, so the
// benchmarks below measure logic's pipeline (validate, queue, batch, ACK,
// fan-out), not the database's fsync; sqlstore has its own benchmarks.
type memCommits struct {
	store.Store
	mu   sync.Mutex
	seqs map[string]uint64
}

func (m *memCommits) AppendMessages(_ context.Context, reqs []store.AppendRequest) ([]store.AppendResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := make([]store.AppendResult, len(reqs))
	for i, r := range reqs {
		m.seqs[r.ConversationID]++
		res[i].Message = store.Message{ConversationID: r.ConversationID, Seq: m.seqs[r.ConversationID],
			SenderID: r.SenderID, ClientMsgID: r.ClientMsgID, Text: r.Text, SentAt: r.SentAt}
	}
	return res, nil
}

func (m *memCommits) MoveCursors(_ context.Context, moves []store.CursorMove) ([]store.CursorResult, error) {
	res := make([]store.CursorResult, len(moves))
	for i, mv := range moves {
		res[i].Cursors = store.Cursors{ConversationID: mv.ConversationID, DeliveredSeq: mv.Seq, LastSeq: mv.Seq}
	}
	return res, nil
}

func benchService(b *testing.B) (*Service, Identity) {
	b.Helper()
	st, err := sqlstore.Open(context.Background(), filepath.Join(b.TempDir(), "m.db"))
	if err != nil {
		b.Fatal(err)
	}
	mem := &memCommits{Store: st, seqs: map[string]uint64{}}
	bus := newFakeBus()
	svc, err := New(Config{TokenSecret: []byte("0123456789abcdef0123456789abcdef"), Encoder: envelope.Encoder{}}, mem, bus, bus, bus,
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	svc.Start()
	b.Cleanup(func() {
		_ = svc.Shutdown(context.Background())
		_ = st.Close()
	})
	ctx := context.Background()
	alice, err := st.CreateUser(ctx, store.DefaultApp, "alice", "x")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreateUser(ctx, store.DefaultApp, "bob", "x"); err != nil {
		b.Fatal(err)
	}
	return svc, Identity{UserID: alice.ID, Username: alice.Username}
}

// BenchmarkSendPipeline is one private message through SendAsync, the
// commit loop and fan-out (nobody online), many in flight at once as on a
// busy node.
func BenchmarkSendPipeline(b *testing.B) {
	svc, alice := benchService(b)
	ctx := context.Background()
	var wg sync.WaitGroup
	done := func(_ Ack, err error) {
		if err != nil {
			b.Error(err)
		}
		wg.Done()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		wg.Add(1)
		svc.SendAsync(ctx, alice, SendRequest{ToUser: "bob", Text: "hello"}, nil, done)
		if i%1024 == 1023 {
			wg.Wait() // stay below the queue's depth
		}
	}
	wg.Wait()
}

// BenchmarkReceiptPipeline is one delivered receipt through the cursor
// loop, 64 in flight.
func BenchmarkReceiptPipeline(b *testing.B) {
	svc, alice := benchService(b)
	move := store.CursorMove{UserID: alice.UserID, ConversationID: "p_1_2", Kind: store.Delivered, Seq: 1}
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := svc.moveCursor(context.Background(), move); err != nil {
				b.Error(err)
			}
		}
	})
}

// BenchmarkReceiptSerial is one receipt at a time: every batch holds one,
// so the per-batch costs show in full.
func BenchmarkReceiptSerial(b *testing.B) {
	svc, alice := benchService(b)
	move := store.CursorMove{UserID: alice.UserID, ConversationID: "p_1_2", Kind: store.Delivered, Seq: 1}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := svc.moveCursor(context.Background(), move); err != nil {
			b.Error(err)
		}
	}
}
