package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

func testAppendSeqs(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	var reqs []store.AppendRequest
	for i := range 5 {
		from, to := alice, bob
		if i%2 == 1 {
			from, to = bob, alice
		}
		reqs = append(reqs, privateReq(from, to, fmt.Sprintf("a%d", i), fmt.Sprintf("text %d", i), at(i)))
	}
	res := mustAppend(t, s, reqs...)
	res = append(res, mustAppend(t, s, privateReq(alice, bob, "b0", "later", at(10)), privateReq(bob, alice, "b1", "last", at(11)))...)
	reqs = append(reqs, privateReq(alice, bob, "b0", "later", at(10)), privateReq(bob, alice, "b1", "last", at(11)))

	conv := store.PrivateConversationID(alice.ID, bob.ID)
	for i, r := range res {
		m, req := r.Message, reqs[i]
		if r.Duplicate || m.Seq != uint64(i+1) || m.ConversationID != conv || m.SenderID != req.SenderID ||
			m.ClientMsgID != req.ClientMsgID || m.Text != req.Text || !m.SentAt.Equal(req.SentAt) {
			t.Errorf("result %d = %+v (dup %v), want seq %d of %s from %+v", i, m, r.Duplicate, i+1, conv, req)
		}
	}
	c, err := s.Conversation(t.Context(), alice.ID, conv)
	if err != nil {
		t.Fatalf("Conversation: %v", err)
	}
	if c.LastSeq != uint64(len(res)) || c.Kind != store.Private {
		t.Errorf("Conversation = %+v, want a private conversation with last seq %d", c, len(res))
	}
}

func testAppendIdempotent(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	first := mustAppend(t, s, privateReq(alice, bob, "c1", "original", at(1)))[0]
	mustAppend(t, s, privateReq(alice, bob, "c2", "second", at(2)))

	// A retry with other content still gets the original back.
	retry := mustAppend(t, s, privateReq(alice, bob, "c1", "changed", at(3)))[0]
	if !retry.Duplicate || retry.Message.Seq != 1 || retry.Message.Text != "original" ||
		!retry.Message.SentAt.Equal(first.Message.SentAt) || retry.Message.ConversationID != first.Message.ConversationID {
		t.Errorf("retry = %+v (dup %v), want the original %+v", retry.Message, retry.Duplicate, first.Message)
	}
	// The same client id from another sender is a different message.
	other := mustAppend(t, s, privateReq(bob, alice, "c1", "bob's", at(4)))[0]
	if other.Duplicate || other.Message.Seq != 3 {
		t.Errorf("bob's c1 = %+v (dup %v), want a new message with seq 3", other.Message, other.Duplicate)
	}
	// The retry consumed no seq.
	next := mustAppend(t, s, privateReq(alice, bob, "c3", "third", at(5)))[0]
	if next.Message.Seq != 4 {
		t.Errorf("next seq = %d, want 4", next.Message.Seq)
	}
}

func testAppendSameIDInBatch(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	res := mustAppend(t, s,
		privateReq(alice, bob, "x", "one", at(1)),
		privateReq(alice, bob, "x", "two", at(2)),
		privateReq(alice, bob, "y", "three", at(3)),
	)
	want := []struct {
		seq  uint64
		dup  bool
		text string
	}{{1, false, "one"}, {1, true, "one"}, {2, false, "three"}}
	for i, w := range want {
		if res[i].Message.Seq != w.seq || res[i].Duplicate != w.dup || res[i].Message.Text != w.text {
			t.Errorf("result %d = %+v (dup %v), want seq %d dup %v text %q", i, res[i].Message, res[i].Duplicate, w.seq, w.dup, w.text)
		}
	}
}

func testAppendDuplicateOtherConversation(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	orig := mustAppend(t, s, privateReq(alice, bob, "c1", "to bob", at(1)))[0].Message
	got := mustAppend(t, s, privateReq(alice, carol, "c1", "to carol", at(2)))[0]
	if !got.Duplicate || got.Message.ConversationID != orig.ConversationID || got.Message.Seq != orig.Seq || got.Message.Text != "to bob" {
		t.Errorf("retry in another conversation = %+v (dup %v), want the original %+v", got.Message, got.Duplicate, orig)
	}
	msgs, err := s.Messages(t.Context(), alice.ID, store.MessageQuery{ConversationID: orig.ConversationID})
	if err != nil || len(msgs) != 1 {
		t.Errorf("Messages after duplicate = %d messages, %v; want 1", len(msgs), err)
	}
}

func testAppendNotMember(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	mustAppend(t, s, privateReq(alice, bob, "c1", "hi", at(1)))
	conv := store.PrivateConversationID(alice.ID, bob.ID)
	tests := []struct {
		name string
		req  store.AppendRequest
		want error
	}{
		{"stranger in a private chat", store.AppendRequest{ConversationID: conv, SenderID: carol.ID, ClientMsgID: "k1"}, store.ErrNotMember},
		{"peer that does not match the id", store.AppendRequest{ConversationID: conv, SenderID: carol.ID, PeerID: alice.ID, ClientMsgID: "k2"}, store.ErrNotMember},
		{"unknown conversation", store.AppendRequest{ConversationID: "g_nope", SenderID: alice.ID, ClientMsgID: "k3"}, store.ErrNotMember},
		{"unknown peer", privateReq(alice, store.User{ID: carol.ID + 1000}, "k4", "", at(2)), store.ErrNotFound},
		{"unknown sender", privateReq(store.User{ID: carol.ID + 1000}, alice, "k5", "", at(2)), store.ErrNotFound},
	}
	for _, tt := range tests {
		res, err := s.AppendMessages(t.Context(), []store.AppendRequest{tt.req})
		if err != nil {
			t.Fatalf("%s: AppendMessages: %v", tt.name, err)
		}
		wantErr(t, tt.name, res[0].Err, tt.want)
	}
	members, err := s.Members(t.Context(), conv)
	slices.Sort(members)
	if want := []int64{alice.ID, bob.ID}; err != nil || !slices.Equal(members, want) {
		t.Errorf("Members = %v, %v; want %v", members, err, want)
	}
}

func testAppendPerMessageErrors(t *testing.T, s store.Store) {
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := store.PrivateConversationID(alice.ID, bob.ID)
	res, err := s.AppendMessages(t.Context(), []store.AppendRequest{
		privateReq(alice, bob, "m1", "one", at(1)),
		{ConversationID: conv, SenderID: carol.ID, ClientMsgID: "bad", Text: "intruder"},
		privateReq(bob, alice, "m2", "two", at(2)),
		privateReq(alice, store.User{ID: carol.ID + 1000}, "ghost", "nobody", at(3)),
		privateReq(alice, bob, "m3", "three", at(4)),
	})
	if err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
	wantErr(t, "stranger", res[1].Err, store.ErrNotMember)
	wantErr(t, "unknown peer", res[3].Err, store.ErrNotFound)
	for i, want := range map[int]uint64{0: 1, 2: 2, 4: 3} {
		if res[i].Err != nil || res[i].Message.Seq != want {
			t.Errorf("result %d = seq %d, %v; want seq %d", i, res[i].Message.Seq, res[i].Err, want)
		}
	}
	// The failed id is free for a later, valid message.
	ok := mustAppend(t, s, privateReq(carol, alice, "bad", "hello", at(5)))[0]
	if ok.Duplicate || ok.Message.Seq != 1 {
		t.Errorf("carol's first message = %+v (dup %v), want seq 1", ok.Message, ok.Duplicate)
	}
}

// testAppendConcurrent sends from many goroutines into one conversation,
// which starts out not existing, from both of its members.
func testAppendConcurrent(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	const workers, batches, perBatch = 8, 10, 5
	var (
		mu   sync.Mutex
		seqs = map[uint64]string{}
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			from, to := alice, bob
			if w%2 == 1 {
				from, to = bob, alice
			}
			for b := range batches {
				var reqs []store.AppendRequest
				for i := range perBatch {
					reqs = append(reqs, privateReq(from, to, fmt.Sprintf("w%d-b%d-%d", w, b, i), "x", at(b)))
				}
				res, err := s.AppendMessages(t.Context(), reqs)
				if err != nil {
					t.Errorf("worker %d: AppendMessages: %v", w, err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if r.Err != nil || r.Duplicate {
						t.Errorf("worker %d: result %d: %v (dup %v)", w, i, r.Err, r.Duplicate)
					}
					if prev, ok := seqs[r.Message.Seq]; ok {
						t.Errorf("seq %d given to %s and %s", r.Message.Seq, prev, reqs[i].ClientMsgID)
					}
					seqs[r.Message.Seq] = reqs[i].ClientMsgID
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const n = workers * batches * perBatch
	for seq := uint64(1); seq <= n; seq++ {
		if _, ok := seqs[seq]; !ok {
			t.Fatalf("seq %d missing among %d results", seq, len(seqs))
		}
	}
	stored := readAll(t, s, alice.ID, store.PrivateConversationID(alice.ID, bob.ID))
	if len(stored) != n {
		t.Fatalf("stored %d messages, want %d", len(stored), n)
	}
	for i, m := range stored {
		if m.Seq != uint64(i+1) || seqs[m.Seq] != m.ClientMsgID {
			t.Fatalf("stored message %d = seq %d id %q, want seq %d id %q", i, m.Seq, m.ClientMsgID, i+1, seqs[m.Seq])
		}
	}
}

// testAppendConcurrentConversations sends batches that create and touch
// many conversations in different orders, the pattern that makes
// concurrent writers lock rows in conflicting orders.
func testAppendConcurrentConversations(t *testing.T, s store.Store) {
	var users []store.User
	for i := range 6 {
		users = append(users, mustUser(t, s, fmt.Sprintf("u%d", i)))
	}
	type pair struct{ from, to store.User }
	var pairs []pair
	for i := range users {
		for j := i + 1; j < len(users); j++ {
			pairs = append(pairs, pair{users[i], users[j]})
		}
	}
	const workers, rounds = 6, 8
	var (
		mu   sync.Mutex
		sent = map[string]int{} // conversation -> messages stored
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				order := slices.Clone(pairs)
				if (w+r)%2 == 1 {
					slices.Reverse(order)
				}
				var reqs []store.AppendRequest
				for i, p := range order {
					from, to := p.from, p.to
					if i%2 == w%2 {
						from, to = to, from
					}
					reqs = append(reqs, privateReq(from, to, fmt.Sprintf("w%d-r%d-%d", w, r, i), "x", at(r)))
				}
				res, err := s.AppendMessages(t.Context(), reqs)
				if err != nil {
					t.Errorf("worker %d: AppendMessages: %v", w, err)
					return
				}
				mu.Lock()
				for i, r := range res {
					if r.Err != nil || r.Duplicate {
						t.Errorf("worker %d: result %d: %v (dup %v)", w, i, r.Err, r.Duplicate)
					}
					sent[reqs[i].ConversationID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, p := range pairs {
		conv := store.PrivateConversationID(p.from.ID, p.to.ID)
		msgs := readAll(t, s, p.from.ID, conv)
		if len(msgs) != sent[conv] || sent[conv] != workers*rounds {
			t.Errorf("%s: stored %d messages, sent %d, want %d", conv, len(msgs), sent[conv], workers*rounds)
		}
		for i, m := range msgs {
			if m.Seq != uint64(i+1) {
				t.Fatalf("%s: message %d has seq %d", conv, i, m.Seq)
			}
		}
	}
}

// testAppendConcurrentRetries races retries of one message: exactly one
// is stored, and every caller learns its seq.
func testAppendConcurrentRetries(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	const workers = 8
	results := make([]store.AppendResult, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			res, err := s.AppendMessages(t.Context(), []store.AppendRequest{
				privateReq(alice, bob, "same", "hello", at(1)),
				privateReq(bob, alice, fmt.Sprintf("other-%d", w), "x", at(1)),
			})
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
				return
			}
			results[w] = res[0]
		})
	}
	wg.Wait()
	originals := 0
	for w, r := range results {
		if r.Err != nil || r.Message.Seq != results[0].Message.Seq || r.Message.Text != "hello" {
			t.Errorf("worker %d: %+v, %v; want seq %d", w, r.Message, r.Err, results[0].Message.Seq)
		}
		if !r.Duplicate {
			originals++
		}
	}
	if originals != 1 {
		t.Errorf("%d callers stored the message, want 1", originals)
	}
	if got := readAll(t, s, alice.ID, store.PrivateConversationID(alice.ID, bob.ID)); len(got) != workers+1 {
		t.Errorf("stored %d messages, want %d", len(got), workers+1)
	}
}

// readAll pages through a whole conversation.
func readAll(t *testing.T, s store.Store, userID int64, conv string) []store.Message {
	t.Helper()
	var all []store.Message
	for {
		var after uint64
		if len(all) > 0 {
			after = all[len(all)-1].Seq
		}
		page, err := s.Messages(t.Context(), userID, store.MessageQuery{ConversationID: conv, AfterSeq: after, Limit: 500})
		if err != nil {
			t.Fatalf("Messages: %v", err)
		}
		if len(page) == 0 {
			return all
		}
		all = append(all, page...)
	}
}
