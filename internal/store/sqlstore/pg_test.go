package sqlstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"testing"

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
		"senders": func() (string, []string) { return withRows(queuedSenders, pgUpdateSendersSQL) },
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
		u, err := s.CreateUser(ctx, fmt.Sprintf("u%d", i), "hash")
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
