package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// search returns the (conversation, seq) of every hit, in rank order.
func search(t *testing.T, s store.Store, user store.User, conv string, terms ...string) []string {
	t.Helper()
	msgs, err := s.Search(t.Context(), store.SearchQuery{UserID: user.ID, Terms: terms, ConversationID: conv, Limit: 100})
	if err != nil {
		t.Fatalf("Search(%q): %v", terms, err)
	}
	out := []string{}
	for _, m := range msgs {
		out = append(out, fmt.Sprintf("%s/%d", m.ConversationID, m.Seq))
	}
	return out
}

func hit(conv string, seq uint64) string { return fmt.Sprintf("%s/%d", conv, seq) }

func testSearch(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	p := store.PrivateConversationID(alice.ID, bob.ID)
	mustAppend(t, s,
		privateReq(alice, bob, "a1", "Budget meeting tomorrow", at(1)),            // 1
		privateReq(bob, alice, "b1", "我们明天开会讨论预算", at(2)),                         // 2
		privateReq(alice, bob, "a2", "the budget, the BUDGET, the budget", at(3)), // 3
		privateReq(alice, bob, "a3", "lunch?", at(4)),                             // 4
		privateReq(alice, bob, "a4", "100% sure_thing", at(5)),                    // 5
	)
	// Carol's private chat with bob is not alice's.
	pc := store.PrivateConversationID(bob.ID, carol.ID)
	mustAppend(t, s, privateReq(carol, bob, "c1", "secret budget", at(6)))

	if got := search(t, s, alice, "", "budget"); !slices.Equal(got, []string{hit(p, 3), hit(p, 1)}) {
		t.Errorf("alice: budget = %v, want the three-budget message first, then seq 1, and not carol's", got)
	}
	if got := search(t, s, bob, "", "budget"); len(got) != 3 || !slices.Contains(got, hit(pc, 1)) {
		t.Errorf("bob: budget = %v, want 3 hits with carol's", got)
	}
	if got := search(t, s, bob, pc, "budget"); !slices.Equal(got, []string{hit(pc, 1)}) {
		t.Errorf("bob in %s: budget = %v", pc, got)
	}
	for _, terms := range [][]string{{"开会讨论"}, {"开会"}, {"会"}, {"明天", "预算"}} {
		if got := search(t, s, alice, "", terms...); !slices.Equal(got, []string{hit(p, 2)}) {
			t.Errorf("alice: %q = %v, want the Chinese message", terms, got)
		}
	}
	if got := search(t, s, alice, "", "budget", "tomorrow"); !slices.Equal(got, []string{hit(p, 1)}) {
		t.Errorf("alice: budget tomorrow = %v, want seq 1 (every term must match)", got)
	}
	if got := search(t, s, alice, "", "MEETING"); !slices.Equal(got, []string{hit(p, 1)}) {
		t.Errorf("alice: MEETING = %v, want seq 1 (case-insensitive)", got)
	}
	if got := search(t, s, alice, "", "%"); !slices.Equal(got, []string{hit(p, 5)}) {
		t.Errorf("alice: %% = %v, want only the message with a percent sign", got)
	}
	if got := search(t, s, alice, "", `"budget`); len(got) != 0 {
		t.Errorf(`alice: "budget = %v, want nothing (a quote is a character, not syntax)`, got)
	}
	// Paging: offsets walk the same order.
	var paged []string
	for off := 0; off < 3; off++ {
		msgs, err := s.Search(t.Context(), store.SearchQuery{UserID: bob.ID, Terms: []string{"budget"}, Limit: 1, Offset: off})
		if err != nil || len(msgs) > 1 {
			t.Fatalf("page %d: %d messages, %v", off, len(msgs), err)
		}
		for _, m := range msgs {
			paged = append(paged, hit(m.ConversationID, m.Seq))
		}
	}
	if all := search(t, s, bob, "", "budget"); !slices.Equal(paged, all) {
		t.Errorf("pages of one = %v, want %v", paged, all)
	}

	// An edit replaces the text: the old words are gone, the new found;
	// the edit message itself is not a hit.
	mustAppend(t, s, changeReq(alice, p, store.KindEdit, 4, "a-e1", "dinner tonight?", at(10)))
	if got := search(t, s, alice, "", "lunch"); len(got) != 0 {
		t.Errorf("lunch after the edit = %v, want nothing", got)
	}
	if got := search(t, s, bob, "", "dinner"); !slices.Equal(got, []string{hit(p, 4)}) {
		t.Errorf("dinner after the edit = %v, want the original seq 4 only", got)
	}
	// A recall takes the message out.
	mustAppend(t, s, changeReq(alice, p, store.KindRecall, 4, "a-r1", "", at(11)))
	if got := search(t, s, bob, "", "dinner"); len(got) != 0 {
		t.Errorf("dinner after the recall = %v, want nothing", got)
	}
	if got := search(t, s, bob, "", "din"); len(got) != 0 {
		t.Errorf("din after the recall = %v, want nothing", got)
	}
}

// testSearchWindows: a group member finds only what they could read.
func testSearchWindows(t *testing.T, s store.Store) {
	alice, bob, dave := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "dave")
	g := mustGroup(t, s, 0, alice, bob)                                         // seq 1: created
	mustAppend(t, s, groupReq(alice, g.ID, "a1", "before dave: apples", at(2))) // 2
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{dave.ID},
		Event: store.Event{Type: "added", ActorID: alice.ID}}); err != nil { // 3
		t.Fatal(err)
	}
	mustAppend(t, s, groupReq(alice, g.ID, "a2", "with dave: apples", at(4))) // 4
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpRemove, Targets: []int64{dave.ID},
		Event: store.Event{Type: "removed", ActorID: alice.ID}}); err != nil { // 5
		t.Fatal(err)
	}
	mustAppend(t, s, groupReq(alice, g.ID, "a3", "after dave: apples", at(6))) // 6
	if got := search(t, s, dave, "", "apples"); !slices.Equal(got, []string{hit(g.ID, 4)}) {
		t.Errorf("dave: apples = %v, want only seq 4 (his window 3..5)", got)
	}
	if _, err := change(t, s, store.GroupChange{GroupID: g.ID, ActorID: alice.ID, Op: store.OpAdd, Targets: []int64{dave.ID},
		Event: store.Event{Type: "added", ActorID: alice.ID}}); err != nil { // 7
		t.Fatal(err)
	}
	mustAppend(t, s, groupReq(alice, g.ID, "a4", "back again: apples", at(8))) // 8
	got := search(t, s, dave, "", "apples")
	slices.Sort(got)
	if want := []string{hit(g.ID, 4), hit(g.ID, 8)}; !slices.Equal(got, want) {
		t.Errorf("dave after rejoining: apples = %v, want %v (both stays, not the gap)", got, want)
	}
	if got := search(t, s, bob, "", "apples"); len(got) != 4 {
		t.Errorf("bob: apples = %v, want all 4", got)
	}
}
