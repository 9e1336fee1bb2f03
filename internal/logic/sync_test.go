package logic

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// rowCounter counts the message rows the store reads.
type rowCounter struct {
	store.Store
	rows atomic.Int64
}

func (c *rowCounter) Messages(ctx context.Context, userID int64, q store.MessageQuery) ([]store.Message, error) {
	msgs, err := c.Store.Messages(ctx, userID, q)
	c.rows.Add(int64(len(msgs)))
	return msgs, err
}

// A device catching up on big messages gets a frame of them per sync page
// and the store reads about that many, not a page limit's worth each time;
// small messages still come a full page limit at a time.
func TestSyncReadsWhatFits(t *testing.T) {
	rc := &rowCounter{}
	s, _ := newTestServiceOn(t, nil, func(st store.Store) store.Store { rc.Store = st; return rc })
	ctx := context.Background()
	alice := login(t, s, "alice", "", "").Identity
	bob := login(t, s, "bob", "", "").Identity
	big := strings.Repeat("b", 8<<10)
	const n = 60
	for i := range n {
		if _, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: fmt.Sprint(i, big)}); err != nil {
			t.Fatal(err)
		}
	}
	cursors := map[string]uint64{}
	got, pages := 0, 0
	rc.rows.Store(0)
	for {
		res, err := s.Sync(ctx, bob, cursors, 0)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, m := range res.Messages {
			cursors[m.ConversationID] = m.Seq
			got++
		}
		if !res.More {
			break
		}
		if len(res.Messages) == 0 || pages > n {
			t.Fatalf("sync page %d made no progress: %+v", pages, res)
		}
	}
	if got != n {
		t.Fatalf("synced %d messages, want %d", got, n)
	}
	if rows := rc.rows.Load(); rows > 3*n {
		t.Fatalf("the store read %d rows to sync %d messages in %d pages", rows, n, pages)
	}

	// Small messages: one page carries most of the page limit.
	carol := login(t, s, "carol", "", "").Identity
	dave := login(t, s, "dave", "", "").Identity
	for i := range 600 {
		if _, err := s.Send(ctx, carol, SendRequest{ToUser: "dave", Text: fmt.Sprint("s", i)}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Sync(ctx, dave, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) < 400 || !res.More {
		t.Fatalf("small messages: a page of %d (more %v), want most of the page limit", len(res.Messages), res.More)
	}
}
