package logic

import (
	"context"
	"sync"
	"time"

	"github.com/magpie-im/magpie/internal/batch"
	"github.com/magpie-im/magpie/internal/store"
)

// Receipts are group-committed like messages: every device reports
// "delivered" for nearly every message, and a transaction (with its fsync)
// per receipt would cost more than storing the messages.

// A receipt does not wait for its commit on a goroutine of its own: at
// load a device reports "delivered" for nearly every message, the cursor
// loop's commits fall behind the appends now and then, and receipts
// waiting each on a read slot used up the slots that syncs and reconnects
// need (answered "server busy") and piled up goroutines. A queued move
// instead carries what to do once it is committed; the queue is the
// loop's, bounded by SendQueue, and a full one is answered busy.
type pendingCursor struct {
	move store.CursorMove
	then func(store.CursorResult) // runs on the cursor loop's answer goroutine
}

// queueCursor queues one move for the cursor loop; then gets its result
// once committed, or at once ErrStopped or errBusy (the queue is full).
func (s *Service) queueCursor(m store.CursorMove, then func(store.CursorResult)) {
	p := &pendingCursor{move: m, then: then}
	full := false
	if !s.accepting(func() { full = !s.cursors.Add(p) }) {
		then(store.CursorResult{Err: ErrStopped})
		return
	}
	if full {
		then(store.CursorResult{Err: errBusy})
	}
}

// moveCursor queues one move and waits for its commit.
func (s *Service) moveCursor(ctx context.Context, m store.CursorMove) (store.Cursors, error) {
	done := make(chan store.CursorResult, 1)
	s.queueCursor(m, func(r store.CursorResult) { done <- r })
	select {
	case r := <-done:
		return r.Cursors, r.Err
	case <-ctx.Done():
		return store.Cursors{}, ctx.Err()
	}
}

// newCursorLoop is the group-commit loop for receipts (package batch).
// Answers overlap the next commit: telling the members is a publish each,
// and now and then a member list to read.
func (s *Service) newCursorLoop() *batch.Loop[*pendingCursor, store.CursorResult] {
	return batch.New(batch.Config[*pendingCursor, store.CursorResult]{
		Depth: s.cfg.SendQueue, Max: s.cfg.MaxBatch, Commit: s.commitCursors, Answer: answerCursors, Overlap: 2,
	})
}

func (s *Service) commitCursors(moves []*pendingCursor) ([]store.CursorResult, error) {
	ms := make([]store.CursorMove, len(moves))
	for i, p := range moves {
		ms[i] = p.move
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.store.MoveCursors(ctx, ms)
}

func answerCursors(moves []*pendingCursor, res []store.CursorResult, err error) {
	for i, p := range moves {
		if err != nil {
			p.then(store.CursorResult{Err: err})
		} else {
			p.then(res[i])
		}
	}
}

// membersOf lists a conversation's members; private conversations name
// theirs in the id, so the common case needs no query.
func (s *Service) membersOf(ctx context.Context, convID string) ([]int64, error) {
	if x, y, ok := parsePrivateID(convID); ok {
		if x == y {
			return []int64{x}, nil
		}
		return []int64{x, y}, nil
	}
	if ids, ok := s.receiptMembers.get(convID, s.now()); ok {
		return ids, nil
	}
	ids, err := s.store.Members(ctx, convID)
	if err == nil {
		s.receiptMembers.put(convID, ids, s.now())
	}
	return ids, err
}

// memberTTL caches group member lists for receipt notifications only:
// every member reports "delivered" for every message, and reading a big
// member list each time would cost more than the receipt. A list a second
// stale at worst tells a just-removed member of one more receipt; sends
// never use this cache (see groupMembers).
type memberTTL struct {
	mu    sync.Mutex
	lists map[string]ttlList
}

type ttlList struct {
	ids []int64
	at  time.Time
}

const receiptMembersTTL = time.Second

func (c *memberTTL) get(conv string, now time.Time) ([]int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.lists[conv]
	if !ok || now.Sub(l.at) > receiptMembersTTL {
		return nil, false
	}
	return l.ids, true
}

func (c *memberTTL) put(conv string, ids []int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lists == nil || len(c.lists) > 10000 {
		c.lists = map[string]ttlList{}
	}
	c.lists[conv] = ttlList{ids: ids, at: now}
}
