package storetest

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

func scheduledIDs(ms []store.ScheduledMessage) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func testScheduled(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	sched := func(u store.User, cmid string, sendAt time.Time) store.ScheduledMessage {
		t.Helper()
		m, existing, err := s.Schedule(ctx, store.ScheduledMessage{UserID: u.ID, ToUser: "bob", Text: "later " + cmid, ClientMsgID: cmid, SendAt: sendAt, CreatedAt: at(0)})
		if err != nil || existing || m.ID == 0 {
			t.Fatalf("Schedule(%s): %+v, %v, %v", cmid, m, existing, err)
		}
		return m
	}
	m2 := sched(alice, "s2", at(20))
	m1 := sched(alice, "s1", at(10))
	m3 := sched(alice, "s3", at(30))
	other := sched(bob, "s1", at(5)) // ids are per sender

	again, existing, err := s.Schedule(ctx, store.ScheduledMessage{UserID: alice.ID, ToUser: "bob", Text: "other text", ClientMsgID: "s1", SendAt: at(99)})
	if err != nil || !existing || again.ID != m1.ID || again.Text != "later s1" || !again.SendAt.Equal(at(10)) {
		t.Fatalf("scheduling s1 again: %+v, %v, %v; want the first one", again, existing, err)
	}
	list, err := s.ScheduledMessages(ctx, alice.ID)
	if err != nil || !slices.Equal(scheduledIDs(list), []int64{m1.ID, m2.ID, m3.ID}) || list[0].ToUser != "bob" || list[0].ClientMsgID != "s1" {
		t.Fatalf("alice's scheduled: %+v, %v; want s1, s2, s3", list, err)
	}

	// Due at 20 s: bob's and s1, s2, soonest first; a second claim during
	// the lease gets nothing, one after it gets them again.
	due, err := s.ClaimDue(ctx, at(20), time.Minute, 10)
	if err != nil || !slices.Equal(scheduledIDs(due), []int64{other.ID, m1.ID, m2.ID}) {
		t.Fatalf("ClaimDue(20 s) = %v, %v; want bob's, s1, s2", scheduledIDs(due), err)
	}
	if due, _ := s.ClaimDue(ctx, at(25), time.Minute, 10); len(due) != 0 {
		t.Errorf("a claim within the lease: %v, want none", scheduledIDs(due))
	}
	if err := s.DoneScheduled(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	if due, _ := s.ClaimDue(ctx, at(81), time.Minute, 1); !slices.Equal(scheduledIDs(due), []int64{m1.ID}) {
		t.Errorf("a claim after the lease, limit 1: %v, want s1 again", scheduledIDs(due))
	}

	// Cancel: only the sender's own, not twice. (Claims above are in
	// 2023: now, they have long expired.)
	wantErr(t, "bob cancels alice's", s.CancelScheduled(ctx, bob.ID, m3.ID), store.ErrNotFound)
	if err := s.CancelScheduled(ctx, alice.ID, m3.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "cancel twice", s.CancelScheduled(ctx, alice.ID, m3.ID), store.ErrNotFound)
	wantErr(t, "cancel what was sent", s.CancelScheduled(ctx, bob.ID, other.ID), store.ErrNotFound)
	// One being sent now cannot be cancelled.
	now := time.Now()
	m4 := sched(alice, "s4", now.Add(-time.Second))
	if due, _ := s.ClaimDue(ctx, now, time.Hour, 10); !slices.Contains(scheduledIDs(due), m4.ID) {
		t.Fatalf("claim now: %v, want s4 in it", scheduledIDs(due))
	}
	wantErr(t, "cancel while being sent", s.CancelScheduled(ctx, alice.ID, m4.ID), store.ErrExists)
}

// testScheduledClaimsOnce: claims racing from many goroutines (on
// PostgreSQL, many connections: logic nodes) give each message to one.
func testScheduledClaimsOnce(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	const n = 40
	for i := range n {
		if _, _, err := s.Schedule(ctx, store.ScheduledMessage{UserID: alice.ID, ToUser: "alice", Text: "x", ClientMsgID: "c" + string(rune('A'+i)), SendAt: at(i)}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				due, err := s.ClaimDue(ctx, at(n), time.Hour, 3)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, m := range due {
					seen[m.ID]++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d messages claimed, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("message %d claimed %d times", id, c)
		}
	}
}

// testScheduledRefused: a refused message stays listed with its code and
// reason, is never claimed again, is refused once, can be cancelled, frees
// its client id, and is purged after its time.
func testScheduledRefused(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	sched := func(cmid string, sendAt time.Time) store.ScheduledMessage {
		t.Helper()
		m, existing, err := s.Schedule(ctx, store.ScheduledMessage{UserID: alice.ID, ToGroup: "g_9", Text: "later " + cmid, ClientMsgID: cmid, SendAt: sendAt, CreatedAt: at(0)})
		if err != nil || existing {
			t.Fatalf("Schedule(%s): %+v, %v, %v", cmid, m, existing, err)
		}
		return m
	}
	m1, m2 := sched("r1", at(10)), sched("r2", at(20))
	due, err := s.ClaimDue(ctx, at(30), time.Minute, 10)
	if err != nil || !slices.Equal(scheduledIDs(due), []int64{m1.ID, m2.ID}) {
		t.Fatalf("ClaimDue = %v, %v", scheduledIDs(due), err)
	}
	if err := s.RefuseScheduled(ctx, m1.ID, at(31), 20, "you left the group"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "refused twice", s.RefuseScheduled(ctx, m1.ID, at(32), 20, "again"), store.ErrNotFound)
	wantErr(t, "refusing what is not there", s.RefuseScheduled(ctx, 999999, at(32), 20, "x"), store.ErrNotFound)
	list, err := s.ScheduledMessages(ctx, alice.ID)
	if err != nil || len(list) != 2 || list[0].ID != m1.ID || !list[0].Refused() || list[1].Refused() {
		t.Fatalf("listed: %+v, %v; want r1 refused, r2 pending", list, err)
	}
	if r := list[0]; !r.RefusedAt.Equal(at(31)) || r.RefusedCode != 20 || r.RefusedReason != "you left the group" || r.ToGroup != "g_9" {
		t.Errorf("refused r1 = %+v", r)
	}
	// Never claimed again, even long after every lease; r2 is.
	if due, _ := s.ClaimDue(ctx, at(500), time.Minute, 10); !slices.Equal(scheduledIDs(due), []int64{m2.ID}) {
		t.Errorf("a claim after the leases: %v, want only r2", scheduledIDs(due))
	}
	// Its client id is free again: a new message, pending.
	again, existing, err := s.Schedule(ctx, store.ScheduledMessage{UserID: alice.ID, ToUser: "bob", Text: "again", ClientMsgID: "r1", SendAt: at(40), CreatedAt: at(33)})
	if err != nil || existing || again.ID == m1.ID || again.Refused() {
		t.Fatalf("scheduling r1 anew: %+v, %v, %v; want a new pending message", again, existing, err)
	}
	// A refused one is cancelled (dismissed) like a pending one.
	if err := s.RefuseScheduled(ctx, again.ID, at(41), 22, "blocked"); err != nil {
		t.Fatal(err)
	}
	if err := s.CancelScheduled(ctx, alice.ID, again.ID); err != nil {
		t.Fatalf("cancel a refused one: %v", err)
	}
	// Purged by age: only those refused before the time.
	m3 := sched("r3", at(50))
	if err := s.RefuseScheduled(ctx, m3.ID, at(600), 20, "later"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeRefused(ctx, at(100)); err != nil || n != 0 {
		t.Errorf("purge before 100 s: %d, %v; want none (none refused that early is left)", n, err)
	}
	if err := s.RefuseScheduled(ctx, m2.ID, at(60), 20, "x"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PurgeRefused(ctx, at(100)); err != nil || n != 1 {
		t.Errorf("purge before 100 s: %d, %v; want r2", n, err)
	}
	if list, _ := s.ScheduledMessages(ctx, alice.ID); !slices.Equal(scheduledIDs(list), []int64{m3.ID}) {
		t.Errorf("after the purge: %v, want r3 (refused at 600 s)", scheduledIDs(list))
	}
}
