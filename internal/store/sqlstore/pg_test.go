package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// TestPostgresPlans: the generic plans of the batch statements probe
// indexes on empty, never analysed tables, the case in which PostgreSQL
// likes a sequential scan most and from which a cached generic plan would
// keep it as the tables grow.
func TestPostgresPlans(t *testing.T) {
	s := openPostgresTest(t)
	ctx := t.Context()
	conn, err := s.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	withRows := func(of rowsOf, stmt string) (string, []string) {
		row := make([]any, len(of.types))
		cte, _ := dialectPostgres.rowsCTE(of.head, of.types, [][]any{row})
		return "WITH " + cte + " " + stmt, of.types
	}
	ids := rowsOf{"k(id)", []string{"TEXT"}}
	stmts := map[string]func() (string, []string){
		"stored":   func() (string, []string) { return withRows(rowsOf{"k(s, c)", []string{"BIGINT", "TEXT"}}, pgStoredSQL) },
		"existing": func() (string, []string) { return withRows(ids, pgExistingSQL) },
		"lock":     func() (string, []string) { return withRows(ids, pgLockConversationsSQL) },
		"members": func() (string, []string) {
			return withRows(rowsOf{"k(c, u, p)", []string{"TEXT", "BIGINT", "BIGINT"}}, pgLoadMembersSQL)
		},
		"conversations": func() (string, []string) {
			return withRows(rowsOf{"v(id, last_seq, updated_at)", []string{"TEXT", "BIGINT", "BIGINT"}}, pgUpdateConversationsSQL)
		},
		"senders":            func() (string, []string) { return withRows(queuedSenders, pgUpdateSendersSQL) },
		"read_conversations": func() (string, []string) { return withRows(ids, pgReadConversationsSQL) },
		"pipelined_write": func() (string, []string) {
			return pgWriteBatchSQL, slices.Concat(queuedRows.types, []string{"TEXT", "BIGINT", "BIGINT", "BIGINT", "BIGINT"},
				queuedSenders.types, []string{"TEXT", "BIGINT", "BIGINT", "BOOLEAN"})
		},
		"cursors": func() (string, []string) {
			return moveCursorsSQL, []string{"TEXT", "BIGINT", "TEXT", "BIGINT", "TEXT", "BIGINT"}
		},
	}
	seqScan := regexp.MustCompile(`Seq Scan on (messages|conversations|members|blocks|friends)\b`)
	for name, stmt := range stmts {
		q, types := stmt()
		if _, err := conn.ExecContext(ctx, "PREPARE plan_"+name+" AS "+q); err != nil {
			t.Fatalf("%s: prepare: %v", name, err)
		}
		args := make([]string, len(types))
		for i, ty := range types {
			args[i] = "'{1}'"
			if ty == "TEXT" {
				args[i] = "'{p_1_2}'"
			}
		}
		rows, err := conn.QueryContext(ctx, "EXPLAIN EXECUTE plan_"+name+"("+strings.Join(args, ", ")+")")
		if err != nil {
			t.Fatalf("%s: explain: %v", name, err)
		}
		var plan strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(line + "\n")
		}
		rows.Close()
		if seqScan.MatchString(plan.String()) {
			t.Errorf("%s: generic plan scans a table:\n%s", name, plan.String())
		}
	}
}

// TestPostgresCursorRace: batches of cursor moves on the same members from
// many goroutines, beside appends that raise the senders' cursors, end
// with every cursor at the highest seq any batch moved it to, and each
// result agrees with the rules (read ≤ delivered ≤ last).
func TestPostgresCursorRace(t *testing.T) {
	s := openPostgresTest(t)
	ctx := t.Context()
	const users = 6
	var us []store.User
	for i := range users {
		u, err := s.CreateUser(ctx, store.DefaultApp, fmt.Sprintf("u%d", i), "hash")
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	convOf := func(i int) string { return store.PrivateConversationID(us[i].ID, us[(i+1)%users].ID) }
	send := func(i, n int) {
		t.Helper()
		reqs := make([]store.AppendRequest, n)
		for j := range reqs {
			reqs[j] = store.AppendRequest{ConversationID: convOf(i), SenderID: us[i].ID, PeerID: us[(i+1)%users].ID,
				ClientMsgID: fmt.Sprintf("%d-%d", i, rand.Int64()), Text: "x"}
		}
		if _, err := s.AppendMessages(ctx, reqs); err != nil {
			t.Error(err)
		}
	}
	for i := range users {
		send(i, 20)
	}
	type key struct {
		conv string
		user int64
	}
	var mu sync.Mutex
	highest := make(map[key][2]uint64) // delivered, read
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for range 30 {
				var moves []store.CursorMove
				for range 1 + r.IntN(8) {
					i := r.IntN(users)
					who := us[(i+r.IntN(2))%users].ID // the sender or the peer
					kind := store.Delivered
					if r.IntN(2) == 0 {
						kind = store.Read
					}
					moves = append(moves, store.CursorMove{UserID: who, ConversationID: convOf(i), Kind: kind, Seq: uint64(1 + r.IntN(20))})
				}
				res, err := s.MoveCursors(ctx, moves)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, m := range moves {
					c := res[j].Cursors
					if res[j].Err != nil || c.ReadSeq > c.DeliveredSeq || c.DeliveredSeq > c.LastSeq || c.DeliveredSeq < m.Seq {
						t.Errorf("move %+v: %+v, %v", m, c, res[j].Err)
					}
					k := key{m.ConversationID, m.UserID}
					h := highest[k]
					h[0] = max(h[0], m.Seq)
					if m.Kind == store.Read {
						h[1] = max(h[1], m.Seq)
					}
					highest[k] = h
				}
				mu.Unlock()
			}
		})
	}
	for i := range users {
		wg.Go(func() {
			for range 5 {
				send(i, 3)
			}
		})
	}
	wg.Wait()
	for k, h := range highest {
		c, err := s.Conversation(context.Background(), k.user, k.conv)
		if err != nil {
			t.Fatal(err)
		}
		want := h
		if k.conv == convOf(senderIndex(k.user, us)) {
			want = [2]uint64{35, 35} // the sender has read all 35 they sent; the moves went up to 20
		}
		if c.DeliveredSeq != want[0] || c.ReadSeq != want[1] {
			t.Errorf("%v: delivered %d read %d, want %d and %d", k, c.DeliveredSeq, c.ReadSeq, want[0], want[1])
		}
	}
}

func senderIndex(id int64, us []store.User) int {
	for i, u := range us {
		if u.ID == id {
			return i
		}
	}
	return -1
}

// TestPostgresPipelined: a batch of members of existing conversations is
// written on the two-round-trip path; a change committed between its
// reads and its write (a mute, the same client id stored by another
// batch) makes the write fail and the locking path decide the batch, as
// if the change had come first.
func TestPostgresPipelined(t *testing.T) {
	s := openPostgresTest(t)
	ctx := t.Context()
	var us []store.User
	for _, name := range []string{"owner", "ann", "ben"} {
		u, err := s.CreateUser(ctx, store.DefaultApp, name, "hash")
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	owner, ann, ben := us[0], us[1], us[2]
	g, _, err := s.CreateGroup(ctx, store.NewGroup{Name: "g", OwnerID: owner.ID, MemberIDs: []int64{ann.ID, ben.ID},
		Event: store.Event{Type: "created"}})
	if err != nil {
		t.Fatal(err)
	}
	private := store.PrivateConversationID(ann.ID, ben.ID)
	send := func(reqs ...store.AppendRequest) []store.AppendResult {
		t.Helper()
		res, err := s.AppendMessages(ctx, reqs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	counts := func() (int64, int64) { return s.pipe.written.Load(), s.pipe.passed.Load() }

	// The first message creates the private chat: the locking path.
	send(store.AppendRequest{ConversationID: private, SenderID: ann.ID, PeerID: ben.ID, ClientMsgID: "p1", Text: "hi"})
	if w, p := counts(); w != 0 || p != 1 {
		t.Fatalf("first private message: written %d passed %d, want 0 and 1", w, p)
	}
	res := send(
		store.AppendRequest{ConversationID: private, SenderID: ann.ID, PeerID: ben.ID, ClientMsgID: "p2", Text: "a"},
		store.AppendRequest{ConversationID: g.ID, SenderID: ben.ID, ClientMsgID: "g1", Text: "b"},
		store.AppendRequest{ConversationID: private, SenderID: ann.ID, PeerID: ben.ID, ClientMsgID: "p2", Text: "a"},
		store.AppendRequest{ConversationID: private, SenderID: ben.ID, PeerID: ann.ID, ClientMsgID: "p3", Text: "c"})
	if w, p := counts(); w != 1 || p != 1 {
		t.Fatalf("batch of members: written %d passed %d, want 1 and 1", w, p)
	}
	if res[0].Message.Seq != 2 || res[2].Message.Seq != 2 || !res[2].Duplicate || res[3].Message.Seq != 3 || res[1].Message.Seq != 2 {
		t.Fatalf("results %+v", res)
	}
	c, err := s.Conversation(ctx, ben.ID, private)
	if err != nil || c.LastSeq != 3 || c.DeliveredSeq != 3 || c.ReadSeq != 3 {
		t.Fatalf("ben's private chat: %+v, %v; want last seq 3 and his cursors at 3", c, err)
	}

	// A mute committed between the reads and the write: the write fails,
	// the locking path refuses the message. With the cache out of the way
	// (it would answer the reads; see TestPostgresHotCache).
	s.pipe.cache.drop([]string{g.ID, private})
	s.pipe.beforeWrite = func() {
		s.pipe.beforeWrite = nil
		if _, err := s.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: owner.ID, Op: store.OpMute,
			Targets: []int64{ben.ID}, Until: time.Now().Add(time.Hour), Event: store.Event{Type: "muted"}}); err != nil {
			t.Error(err)
		}
	}
	res = send(store.AppendRequest{ConversationID: g.ID, SenderID: ben.ID, ClientMsgID: "g2", Text: "muted"})
	if !errors.Is(res[0].Err, store.ErrMuted) {
		t.Fatalf("a message after the mute: %+v, want ErrMuted", res[0])
	}
	if w, p := counts(); w != 1 || p != 2 {
		t.Fatalf("after the mute: written %d passed %d, want 1 and 2", w, p)
	}
	s.pipe.cache.drop([]string{g.ID, private})

	// The same client id stored meanwhile: answered with that original.
	var first store.AppendResult
	s.pipe.beforeWrite = func() {
		s.pipe.beforeWrite = nil
		r, err := s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: private, SenderID: ann.ID, PeerID: ben.ID, ClientMsgID: "p4", Text: "once"}})
		if err != nil {
			t.Error(err)
			return
		}
		first = r[0]
	}
	res = send(store.AppendRequest{ConversationID: private, SenderID: ann.ID, PeerID: ben.ID, ClientMsgID: "p4", Text: "once"})
	if !res[0].Duplicate || res[0].Message.Seq != first.Message.Seq || first.Message.Seq != 4 {
		t.Fatalf("the retry: %+v, the original: %+v", res[0], first)
	}
	if w, p := counts(); w != 2 || p != 3 {
		t.Fatalf("after the retry: written %d passed %d, want 2 and 3", w, p)
	}
	msgs, err := s.Messages(ctx, ann.ID, store.MessageQuery{ConversationID: private, Limit: 10})
	if err != nil || len(msgs) != 4 {
		t.Fatalf("history: %d messages, %v; want 4", len(msgs), err)
	}
}

// TestPostgresHotCache: batches of conversations and senders the pipelined
// path's cache knows skip the reads, and whatever changed since the cache
// was filled still decides them: a friendship removed and a block (they
// move no seq: the write statement reads them), a mute (it moves the last
// seq; the cache keeps a conversation's other senders only from a batch
// that raised its cached last seq), a message written by another node, a
// retry of a stored message.
func TestPostgresHotCache(t *testing.T) {
	s, dsn := openPostgresTestDSN(t)
	ctx := t.Context()
	var us []store.User
	for _, name := range []string{"owner", "ann", "ben"} {
		u, err := s.CreateUser(ctx, store.DefaultApp, name, "hash")
		if err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	owner, ann, ben := us[0], us[1], us[2]
	g, _, err := s.CreateGroup(ctx, store.NewGroup{Name: "g", OwnerID: owner.ID, MemberIDs: []int64{ann.ID, ben.ID},
		Event: store.Event{Type: "created"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RequestFriend(ctx, ann.ID, ben.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.AcceptFriend(ctx, ben.ID, ann.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	private := store.PrivateConversationID(ann.ID, ben.ID)
	n := 0
	toBen := func(friend bool) store.AppendResult {
		t.Helper()
		n++
		res, err := s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: private, SenderID: ann.ID, PeerID: ben.ID,
			ClientMsgID: fmt.Sprintf("p%d", n), Text: "hi", RequireFriend: friend}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	inGroup := func(cmid string) store.AppendResult {
		t.Helper()
		res, err := s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: g.ID, SenderID: ben.ID, ClientMsgID: cmid, Text: "g"}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	hot := func(wantHot, wantStale int64) {
		t.Helper()
		if h, st := s.pipe.hot.Load(), s.pipe.stale.Load(); h != wantHot || st != wantStale {
			t.Fatalf("hot %d stale %d, want %d and %d", h, st, wantHot, wantStale)
		}
	}

	// The first message creates the chat (locking path), the second reads
	// (two round trips) and fills the cache, the third is one round trip.
	for i := 1; i <= 3; i++ {
		if r := toBen(true); r.Err != nil || r.Message.Seq != uint64(i) {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	hot(1, 0)

	// A friendship removed: the write finds no friendship and fails, the
	// reads then refuse the message.
	if err := s.RemoveFriend(ctx, ben.ID, ann.ID); err != nil {
		t.Fatal(err)
	}
	if r := toBen(true); !errors.Is(r.Err, store.ErrNotFriends) {
		t.Fatalf("after the unfriending: %+v, want ErrNotFriends", r)
	}
	hot(1, 1)
	for i := 4; i <= 5; i++ { // without --require-friendship: allowed, the cache filled again
		if r := toBen(false); r.Err != nil || r.Message.Seq != uint64(i) {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	hot(2, 1)

	// A block: the same.
	if err := s.Block(ctx, ben.ID, ann.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r := toBen(false); !errors.Is(r.Err, store.ErrBlocked) {
		t.Fatalf("after the block: %+v, want ErrBlocked", r)
	}
	hot(2, 2)
	if err := s.Unblock(ctx, ben.ID, ann.ID); err != nil {
		t.Fatal(err)
	}

	// Another node appends: the cached last seq is stale, the message
	// takes the seq after the other node's.
	other := mustOpen(t, dsn)
	for i := 6; i <= 7; i++ {
		if r := toBen(false); r.Err != nil || r.Message.Seq != uint64(i) {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	hot(3, 2)
	res, err := other.AppendMessages(ctx, []store.AppendRequest{{ConversationID: private, SenderID: ben.ID, PeerID: ann.ID,
		ClientMsgID: "b1", Text: "from the other node"}})
	if err != nil || res[0].Err != nil || res[0].Message.Seq != 8 {
		t.Fatalf("the other node's message: %+v, %v", res, err)
	}
	if r := toBen(false); r.Err != nil || r.Message.Seq != 9 {
		t.Fatalf("after the other node's message: %+v, want seq 9", r)
	}
	hot(3, 3)

	// A retry of a stored message while the cache knows its chat: the
	// client ids' index fails the write, the original is the answer.
	if r := toBen(false); r.Err != nil || r.Message.Seq != 10 {
		t.Fatalf("message 10: %+v", r)
	}
	hot(4, 3)
	n--
	if r := toBen(false); !r.Duplicate || r.Message.Seq != 10 {
		t.Fatalf("the retry of message 10: %+v", r)
	}
	hot(4, 4)

	// A mute in a group, committed after the cache has the sender.
	for i, cmid := range []string{"g1", "g2"} {
		if r := inGroup(cmid); r.Err != nil || r.Message.Seq != uint64(i+2) { // seq 1: the group's creation
			t.Fatalf("group message %s: %+v", cmid, r)
		}
	}
	hot(5, 4)
	if _, err := s.ChangeGroup(ctx, store.GroupChange{GroupID: g.ID, ActorID: owner.ID, Op: store.OpMute,
		Targets: []int64{ben.ID}, Until: time.Now().Add(time.Hour), Event: store.Event{Type: "muted"}}); err != nil {
		t.Fatal(err)
	}
	// ann's message, read afresh (ann is not in the cache), must not keep
	// ben's entry from before the mute.
	res, err = s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: g.ID, SenderID: ann.ID, ClientMsgID: "a1", Text: "g"}})
	if err != nil || res[0].Err != nil {
		t.Fatalf("ann's group message: %+v, %v", res, err)
	}
	if r := inGroup("g3"); !errors.Is(r.Err, store.ErrMuted) {
		t.Fatalf("after the mute: %+v, want ErrMuted", r)
	}
	msgs, err := s.Messages(ctx, ann.ID, store.MessageQuery{ConversationID: private, Limit: 20})
	if err != nil || len(msgs) != 10 {
		t.Fatalf("history: %d messages, %v; want 10", len(msgs), err)
	}
}

// TestPostgresCursorNoOpLocksNothing: a receipt at or below a member's
// cursors (a sender's own, after its appends raised them) takes no lock on
// the member's row, so it neither waits for nor holds up an append on that
// row; a raising move in the same batch still raises. With the row held
// by another transaction, the batch would otherwise wait for it.
func TestPostgresCursorNoOpLocksNothing(t *testing.T) {
	s := openPostgresTest(t)
	ctx := t.Context()
	a, err := s.CreateUser(ctx, store.DefaultApp, "a", "hash")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.CreateUser(ctx, store.DefaultApp, "b", "hash")
	if err != nil {
		t.Fatal(err)
	}
	conv := store.PrivateConversationID(a.ID, b.ID)
	for i := range 3 {
		if _, err := s.AppendMessages(ctx, []store.AppendRequest{{ConversationID: conv, SenderID: a.ID, PeerID: b.ID,
			ClientMsgID: fmt.Sprint(i), Text: "x"}}); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2 FOR UPDATE`, conv, a.ID); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.MoveCursors(wait, []store.CursorMove{
		{ConversationID: conv, UserID: a.ID, Kind: store.Delivered, Seq: 2},
		{ConversationID: conv, UserID: a.ID, Kind: store.Read, Seq: 3},
		{ConversationID: conv, UserID: b.ID, Kind: store.Delivered, Seq: 2},
	})
	if err != nil {
		t.Fatalf("no-op moves on a row another transaction holds: %v (they waited for its lock)", err)
	}
	for i, want := range []store.Cursors{
		{ConversationID: conv, UserID: a.ID, DeliveredSeq: 3, ReadSeq: 3, LastSeq: 3},
		{ConversationID: conv, UserID: a.ID, DeliveredSeq: 3, ReadSeq: 3, LastSeq: 3},
		{ConversationID: conv, UserID: b.ID, DeliveredSeq: 2, ReadSeq: 0, LastSeq: 3, Moved: true},
	} {
		if res[i].Err != nil || res[i].Cursors != want {
			t.Errorf("move %d: %+v, %v; want %+v", i, res[i].Cursors, res[i].Err, want)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	c, err := s.Conversation(ctx, b.ID, conv)
	if err != nil {
		t.Fatal(err)
	}
	if c.DeliveredSeq != 2 || c.ReadSeq != 0 {
		t.Errorf("b's cursors: delivered %d read %d, want 2 and 0", c.DeliveredSeq, c.ReadSeq)
	}
}
