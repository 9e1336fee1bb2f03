package sqlstore

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// BenchmarkAppendMessages measures the group commit under the load a busy
// logic node sees: batches spanning 200 existing private conversations,
// one or four messages per conversation, from both sides; and a quiet
// node's, one message a batch.
func BenchmarkAppendMessages(b *testing.B) {
	for _, be := range []backend{{"sqlite", openSQLiteTest}, {"postgres", openPostgresTest}} {
		for _, n := range []int{1, 200, 800} {
			const convs = 200
			b.Run(fmt.Sprintf("%s/batch=%d", be.name, n), func(b *testing.B) {
				benchAppendMessages(b, be.open(b), convs, n)
			})
		}
	}
}

func benchAppendMessages(b *testing.B, s *Store, convs, n int) {
	ctx := context.Background()
	pairs := make([][2]store.User, convs)
	for i := range pairs {
		for j := range 2 {
			u, err := s.CreateUser(ctx, store.DefaultApp, fmt.Sprintf("u%d-%d", i, j), "h")
			if err != nil {
				b.Fatal(err)
			}
			pairs[i][j] = u
		}
	}
	var id, round int
	batch := func(n int) []store.AppendRequest {
		reqs := make([]store.AppendRequest, n)
		now := time.Now()
		round++
		for i := range reqs {
			p, side := pairs[i%convs], (i+i/convs+round)%2
			from, to := p[side], p[1-side]
			reqs[i] = store.AppendRequest{
				ConversationID: store.PrivateConversationID(from.ID, to.ID),
				SenderID:       from.ID, PeerID: to.ID,
				ClientMsgID: fmt.Sprintf("m%d", id), Text: "hello, this is a benchmark message", SentAt: now,
			}
			id++
		}
		return reqs
	}
	send := func(reqs []store.AppendRequest) {
		res, err := s.AppendMessages(ctx, reqs)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil || r.Duplicate {
				b.Fatalf("result: %+v", r)
			}
		}
	}
	send(batch(convs)) // the conversations exist before timing starts

	b.ReportAllocs()
	cpu := cpuTime(b)
	for b.Loop() {
		send(batch(n))
	}
	msgs := float64(n * b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/msgs, "ns/msg")
	// Wall time includes the wait for fsync (and for PostgreSQL); this
	// process's CPU time per message is what a busy node runs out of.
	b.ReportMetric(float64(cpuTime(b)-cpu)/msgs, "cpu-ns/msg")
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkMessagesPage measures a history page of 100 rows of a group's
// open window: what each history and sync request reads.
func BenchmarkMessagesPage(b *testing.B) {
	for _, be := range []backend{{"sqlite", openSQLiteTest}, {"postgres", openPostgresTest}} {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			ctx := context.Background()
			var ids []int64
			for i := range 3 {
				u, err := s.CreateUser(ctx, store.DefaultApp, fmt.Sprintf("p%d", i), "h")
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, u.ID)
			}
			g, _, err := s.CreateGroup(ctx, store.NewGroup{Name: "g", OwnerID: ids[0], MemberIDs: ids[1:], Event: store.Event{Type: "created"}})
			if err != nil {
				b.Fatal(err)
			}
			reqs := make([]store.AppendRequest, 500)
			for i := range reqs {
				reqs[i] = store.AppendRequest{ConversationID: g.ID, SenderID: ids[i%3], ClientMsgID: fmt.Sprintf("m%d", i),
					Text: "hello, this is a benchmark message", SentAt: time.Now()}
			}
			if _, err := s.AppendMessages(ctx, reqs); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				msgs, err := s.Messages(ctx, ids[1], store.MessageQuery{ConversationID: g.ID, BeforeSeq: 400, Limit: 100})
				if err != nil || len(msgs) != 100 {
					b.Fatalf("page: %d rows, %v", len(msgs), err)
				}
			}
		})
	}
}
