package storetest

import (
	"fmt"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testCursorBatch: a batch of moves commits together, keeps input order for
// moves of the same cursor, and isolates per-move errors.
func testCursorBatch(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	ab := store.PrivateConversationID(alice.ID, bob.ID)
	sendN(t, s, alice, bob, "ab", 5)
	moves := []store.CursorMove{
		{UserID: bob.ID, ConversationID: ab, Kind: store.Delivered, Seq: 3},
		{UserID: carol.ID, ConversationID: ab, Kind: store.Read, Seq: 1}, // not a member
		{UserID: bob.ID, ConversationID: ab, Kind: store.Delivered, Seq: 5},
		{UserID: bob.ID, ConversationID: ab, Kind: store.Read, Seq: 9}, // beyond the last seq
		{UserID: bob.ID, ConversationID: ab, Kind: store.Read, Seq: 2},
		{UserID: bob.ID, ConversationID: ab, Kind: store.Delivered, Seq: 4}, // backwards: no move
	}
	res, err := s.MoveCursors(t.Context(), moves)
	if err != nil {
		t.Fatalf("MoveCursors: %v", err)
	}
	if len(res) != len(moves) {
		t.Fatalf("got %d results for %d moves", len(res), len(moves))
	}
	want := []struct {
		delivered, read uint64
		moved           bool
		err             error
	}{
		{3, 0, true, nil},
		{0, 0, false, store.ErrNotMember},
		{5, 0, true, nil},
		{0, 0, false, store.ErrSeqOutOfRange},
		{5, 2, true, nil},
		{5, 2, false, nil},
	}
	for i, w := range want {
		r := res[i]
		wantErr(t, fmt.Sprint("move ", i), r.Err, w.err)
		if w.err != nil {
			continue
		}
		if r.Cursors.DeliveredSeq != w.delivered || r.Cursors.ReadSeq != w.read || r.Cursors.Moved != w.moved || r.Cursors.LastSeq != 5 {
			t.Errorf("move %d: got %+v, want delivered %d read %d moved %v", i, r.Cursors, w.delivered, w.read, w.moved)
		}
	}
	c, err := s.Conversation(t.Context(), bob.ID, ab)
	if err != nil || c.DeliveredSeq != 5 || c.ReadSeq != 2 {
		t.Fatalf("after the batch: %+v, %v; want delivered 5, read 2", c, err)
	}
}
