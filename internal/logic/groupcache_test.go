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
