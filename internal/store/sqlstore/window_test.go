package sqlstore

import (
	"math"
	"slices"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// TestOpenWindowCheckedWithRows: Messages reads a member's open window in
// one statement and its rows in the next; a leave committed in between,
// with messages after it, must not let those through. In the snapshot the
// window was read in, messageRange returns the stay's rows and none of
// what was committed after the window's read.
func TestOpenWindowCheckedWithRows(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			ctx := t.Context()
			alice, bob, _ := createThree(t, s)
			g, _, err := s.CreateGroup(ctx, store.NewGroup{Name: "g", OwnerID: alice.ID, MemberIDs: []int64{bob.ID},
				Event: store.Event{Type: "created"}})
			if err != nil {
				t.Fatal(err)
			}
			send := func(from store.User, id string) uint64 {
				t.Helper()
				res, err := s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: g.ID, SenderID: from.ID, ClientMsgID: id, Text: id}})
				if err != nil || res[0].Err != nil {
					t.Fatalf("append %s: %v %v", id, err, res)
				}
				return res[0].Message.Seq
			}
			before := send(bob, "before")
			tx, err := s.read.BeginTx(ctx, s.d.snapshotRead())
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback() //nolint:errcheck
			var joined int64    // bob's open window, as Messages' first statement reads it
			if err := tx.QueryRowContext(ctx, `SELECT joined_seq FROM members WHERE conversation_id = $1 AND user_id = $2`,
				g.ID, bob.ID).Scan(&joined); err != nil {
				t.Fatal(err)
			}
			left, err := s.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpLeave, Event: store.Event{Type: "left"}})
			if err != nil || left.Event == nil {
				t.Fatalf("leave: %+v, %v", left, err)
			}
			send(alice, "after")

			msgs, err := messageRange(ctx, tx, g.ID, joined, math.MaxInt64, "ASC", 10)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, m := range msgs {
				seqs = append(seqs, m.Seq)
			}
			// The group's creation and bob's message; not his leave nor alice's after it.
			if want := []uint64{1, before}; !slices.Equal(seqs, want) {
				t.Fatalf("rows of bob's window read before his leave: seqs %v, want %v", seqs, want)
			}
		})
	}
}
