package logic

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// groupSend sends text to gid as from and waits for the ack.
func groupSend(t *testing.T, s *Service, from Identity, gid, text string, origin *clusterpb.ConnRef) Ack {
	t.Helper()
	done := make(chan Ack, 1)
	s.SendAsync(context.Background(), from, SendRequest{ToGroup: gid, Text: text}, origin, func(a Ack, err error) {
		if err != nil {
			t.Errorf("send %q: %v", text, err)
		}
		done <- a
	})
	return <-done
}

// receivers returns the connections that got the message with text.
func receivers(ds []delivered, text string) []uint64 {
	var out []uint64
	for _, d := range ds {
		if d.env.GetMessage().GetText() == text {
			out = append(out, d.conns...)
		}
	}
	slices.Sort(out)
	return out
}

// The member list is cached across batches, but a member removed — through
// this node or behind its back (another logic node, straight in the store)
// — gets no message committed after the removal, and an added one gets
// every message committed after the addition.
func TestGroupMemberCacheFollowsMembership(t *testing.T) {
	s, bus := newTestService(t, nil)
	ctx := context.Background()
	alice, bob, carol := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity, login(t, s, "carol", "", "").Identity
	dave := login(t, s, "dave", "", "").Identity
	laptop := connect(bus, "gw1", 1, alice)
	connect(bus, "gw1", 2, bob)
	connect(bus, "gw1", 3, carol)
	connect(bus, "gw1", 4, dave)
	connect(bus, "gw1", 5, alice) // alice's phone: every message has a receiver
	g, err := s.CreateGroup(ctx, alice, "team", []string{"bob", "carol"}, "")
	if err != nil {
		t.Fatal(err)
	}
	bus.waitDeliveries(t, 1) // created
	step := func(text string, want ...uint64) {
		t.Helper()
		groupSend(t, s, alice, g.ID, text, laptop)
		if got := receivers(bus.waitDeliveries(t, 1), text); !slices.Equal(got, want) {
			t.Fatalf("%q went to %v, want %v", text, got, want)
		}
	}
	step("one", 2, 3, 5)
	step("two", 2, 3, 5) // from the cache

	// Through the logic: the removal event goes out, then nothing more.
	if err := s.RemoveMember(ctx, alice, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	bus.waitDeliveries(t, 1) // the "removed" event
	step("three", 2, 5)

	// Behind the logic's back, as another node would: the store alone.
	if _, err := s.store.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: alice.UserID, Op: store.OpRemove,
		Targets: []int64{bob.UserID}, Event: store.Event{Type: "removed"}}); err != nil {
		t.Fatal(err)
	}
	step("four", 5)
	if _, err := s.store.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: alice.UserID, Op: store.OpAdd,
		Targets: []int64{dave.UserID}, Event: store.Event{Type: "added"}}); err != nil {
		t.Fatal(err)
	}
	step("five", 4, 5)
}

// countingStore counts Members calls.
type countingStore struct {
	store.Store
	members atomic.Int64 // Members runs on the commit loop's goroutine
}

func (c *countingStore) Members(ctx context.Context, id string) ([]int64, error) {
	c.members.Add(1)
	return c.Store.Members(ctx, id)
}

func TestGroupMemberCacheSavesReads(t *testing.T) {
	var cs *countingStore
	s, bus := newTestServiceOn(t, nil, func(st store.Store) store.Store {
		cs = &countingStore{Store: st} // wrapped before the Service's goroutines start
		return cs
	})
	ctx := context.Background()
	alice := login(t, s, "alice", "", "").Identity
	login(t, s, "bob", "", "")
	laptop := connect(bus, "gw1", 1, alice)
	g, err := s.CreateGroup(ctx, alice, "team", []string{"bob"}, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		groupSend(t, s, alice, g.ID, string(rune('a'+i)), laptop)
	}
	bus.take()
	if n := cs.members.Load(); n != 1 {
		t.Errorf("Members read %d times for 5 consecutive messages, want 1", n)
	}
}

// A group message is fanned out by the commit loop's fan-out worker, not
// by the answer: a batch's ACKs, and the next batch's, come before any
// member gets a message, and the worker then delivers every message to
// every online member in commit order.
func TestGroupFanOutOffTheAckPath(t *testing.T) {
	s, bus := newTestService(t, nil)
	ctx := context.Background()
	alice, bob, carol := login(t, s, "alice", "", "").Identity, login(t, s, "bob", "", "").Identity, login(t, s, "carol", "", "").Identity
	laptop := connect(bus, "gw1", 1, alice)
	connect(bus, "gw1", 2, bob)
	connect(bus, "gw2", 3, carol)
	g, err := s.CreateGroup(ctx, alice, "team", []string{"bob", "carol"}, "")
	if err != nil {
		t.Fatal(err)
	}
	bus.waitDeliveries(t, 2) // created, to each gateway
	fan := make(chan groupDelivery, 8)
	var acks []uint64
	const first = 100 // any seqs: the fan-out reads the members for the first
	seq := uint64(first - 1)
	for range 2 { // two batches of two
		var sends []*pendingSend
		var results []store.AppendResult
		for range 2 {
			seq++
			sends = append(sends, &pendingSend{from: alice, origin: laptop, done: func(a Ack, err error) {
				if err != nil {
					t.Errorf("ack %d: %v", a.Seq, err)
				}
				acks = append(acks, a.Seq)
			}})
			results = append(results, store.AppendResult{Message: store.Message{ConversationID: g.ID, Seq: seq, SenderID: alice.UserID, Text: "hi"}})
		}
		s.finishTo(fan, sends, results, nil)
	}
	if d := bus.take(); len(d) != 0 {
		t.Fatalf("%d deliveries before the fan-out worker ran, want 0", len(d))
	}
	if !slices.Equal(acks, []uint64{first, first + 1, first + 2, first + 3}) {
		t.Fatalf("acks %v, want 4 in commit order from %d", acks, uint64(first))
	}
	close(fan)
	s.runFanout(fan)
	d := bus.take()
	var gotSeqs []uint64
	for _, x := range d {
		gotSeqs = append(gotSeqs, x.env.GetMessage().GetSeq())
	}
	// One publish per gateway per message: gw1 (bob), gw2 (carol); never
	// alice's sending connection.
	want := []uint64{first, first, first + 1, first + 1, first + 2, first + 2, first + 3, first + 3}
	if !slices.Equal(gotSeqs, want) {
		t.Fatalf("delivered seqs %v, want %v", gotSeqs, want)
	}
	for _, x := range d {
		if x.gateway == "gw1" && !slices.Equal(x.conns, []uint64{2}) || x.gateway == "gw2" && !slices.Equal(x.conns, []uint64{3}) {
			t.Errorf("seq %d to %s %v, want bob's 2 on gw1, carol's 3 on gw2", x.env.GetMessage().GetSeq(), x.gateway, x.conns)
		}
	}
}
