package sqlstore

import (
	"math"
	"slices"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// TestOpenWindowCheckedWithRows: Messages reads a member's open window in
// one statement and its rows in the next; a leave committed in between,
// with messages after it, must not let those through. messageRange, given
// the window as read before the leave, returns the stay's rows and none
// after the leave.
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
			var joined int64 // bob's open window, as Messages' first statement reads it
			if err := s.read.QueryRowContext(ctx, `SELECT joined_seq FROM members WHERE conversation_id = $1 AND user_id = $2`,
				g.ID, bob.ID).Scan(&joined); err != nil {
				t.Fatal(err)
			}
			before := send(bob, "before")
			left, err := s.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: bob.ID, Op: store.OpLeave, Event: store.Event{Type: "left"}})
			if err != nil || left.Event == nil {
				t.Fatalf("leave: %+v, %v", left, err)
			}
			send(alice, "after")

			msgs, err := s.messageRange(ctx, g.ID, joined, math.MaxInt64, bob.ID, "ASC", 10)
			if err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			for _, m := range msgs {
				seqs = append(seqs, m.Seq)
			}
			// The group's creation, bob's message and his leave; not alice's after it.
			if want := []uint64{1, before, left.Event.Seq}; !slices.Equal(seqs, want) {
				t.Fatalf("rows of bob's window read before his leave: seqs %v, want %v", seqs, want)
			}
		})
	}
}
