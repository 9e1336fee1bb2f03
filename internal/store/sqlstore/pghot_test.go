package sqlstore

import (
	"fmt"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// TestPgHotBound: the PostgreSQL append cache stays within maxHotMembers
// memberships however many senders its conversations see, and counts
// them exactly.
func TestPgHotBound(t *testing.T) {
	var h pgHot
	const convs = 200 // × maxHotSenders is past maxHotMembers
	last := make([]int64, convs)
	for i := range convs * maxHotSenders {
		c := i % convs
		id := fmt.Sprintf("g_%d", c)
		sender := int64(i/convs + 1)
		b := &appendBatch{
			convs:   map[string]*convState{id: {lastSeq: last[c] + 1, kind: "group", dirty: true}},
			members: map[memberKey]memberState{{id, sender}: {current: true}},
		}
		h.keep(b, []store.AppendRequest{{ConversationID: id, SenderID: sender}}, map[string]int64{id: last[c]})
		last[c]++
		n := 0
		for _, e := range h.convs {
			n += len(e.members)
		}
		if n != h.nmembers || n > maxHotMembers {
			t.Fatalf("after %d batches: %d memberships cached, counted %d; at most %d", i+1, n, h.nmembers, maxHotMembers)
		}
	}
}
