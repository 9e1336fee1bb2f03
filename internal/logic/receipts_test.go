package logic

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// heldCursors blocks MoveCursors until release closes, and says when a
// commit began.
type heldCursors struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (h *heldCursors) MoveCursors(ctx context.Context, moves []store.CursorMove) ([]store.CursorResult, error) {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.release
	return h.Store.MoveCursors(ctx, moves)
}

// Receipts waiting for their commit hold no read slot: with the cursor
// loop stuck, more receipts than there are slots queue, a sync still runs,
// and every receipt is answered once the commit goes through. Past the
// loop's queue a receipt is answered busy at once.
func TestReceiptsWaitWithoutReadSlots(t *testing.T) {
	held := &heldCursors{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s, _ := newTestServiceOn(t, func(c *Config) { c.MaxReads = 2; c.SendQueue = 8 }, func(st store.Store) store.Store {
		held.Store = st
		return held
	})
	var once sync.Once
	release := func() { once.Do(func() { close(held.release) }) }
	t.Cleanup(release) // before the Service's Shutdown, which waits for the loop
	ctx := context.Background()
	alice := login(t, s, "alice", "", "").Identity
	bob := login(t, s, "bob", "", "").Identity
	for i := range 3 {
		if _, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: fmt.Sprint("m", i)}); err != nil {
			t.Fatal(err)
		}
	}
	conv := store.PrivateConversationID(alice.UserID, bob.UserID)
	answers := make(chan error, 32)
	// receipt queues one the way the adapter does, waiting for a free read
	// slot: a receipt's read goroutine frees its slot right after queueing.
	receipt := func(seq uint64) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			queued := make(chan error, 1)
			s.Read(bob, FailFunc(func(err error) { queued <- err }), func(_ context.Context, id Identity) {
				s.MoveCursorThen(id, conv, store.Delivered, seq, nil, func(_ store.Cursors, err error) { answers <- err })
				queued <- nil
			})
			err := <-queued
			if err == nil {
				return
			}
			if Code(err) != wire.CodeUnavailable || time.Now().After(deadline) {
				t.Fatalf("receipt %d: no read slot: %v", seq, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	receipt(1)
	<-held.entered // the loop holds the first one in its commit
	for range 8 {  // the queue's depth
		receipt(2)
	}
	// Every read slot is free again: a sync runs.
	synced := make(chan error, 1)
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.Read(bob, FailFunc(func(err error) { synced <- err }), func(ctx context.Context, id Identity) {
			_, err := s.Sync(ctx, id, nil, 0)
			synced <- err
		})
		err := <-synced
		if err == nil {
			break
		}
		if Code(err) != wire.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("sync with receipts waiting on the cursor loop: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // a receipt's read goroutine still on its way out
	}
	// The queue is full: the next one is answered busy, not queued.
	receipt(3)
	if err := <-answers; !errors.Is(err, ErrOverloaded) {
		t.Fatalf("receipt past the cursor queue: %v, want busy", err)
	}
	release()
	for i := range 9 {
		if err := <-answers; err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
	}
}
