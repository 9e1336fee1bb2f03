package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/proto/wire"
)

// A scheduled message that can no longer be sent at its time (issue 13):
// refused with the reason, listed so by the SDK, a scheduled.refused
// notice to the sender's devices; on SQLite and PostgreSQL.
func TestScheduledRefusedIsListedAndNoticed(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testScheduledRefused(t, "") })
	t.Run("postgres", func(t *testing.T) { testScheduledRefused(t, postgresSchema(t)) })
}

func testScheduledRefused(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, aliceN := noticeClient(t, n, "alice", "a", "tcp", true)
	bob, _ := newClient(t, n, "bob", "b", "ws", true)
	g, err := bob.CreateGroup(ctx, client.NewGroup{Name: "team", Members: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(1500 * time.Millisecond)
	ack, err := alice.Send(ctx, client.SendRequest{ToGroup: g.ID, Text: "stand-up!", SendAt: soon})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := alice.ScheduledMessages(ctx); err != nil || len(list) != 1 || list[0].Status != client.ScheduledPending {
		t.Fatalf("before its time: %+v, %v; want one pending", list, err)
	}
	if err := bob.RemoveMember(ctx, g.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the scheduled.refused notice", func() bool {
		for _, l := range aliceN.lines() {
			if l == "scheduled.refused" {
				return true
			}
		}
		return false
	})
	aliceN.mu.Lock()
	no := aliceN.got[len(aliceN.got)-1]
	aliceN.mu.Unlock()
	if no.ScheduledID != ack.ScheduledID || no.Code != wire.CodeNotMember || no.Reason == "" || no.ToGroup != g.ID {
		t.Errorf("notice %+v; want scheduled %d, not_member, a reason, to %s", no, ack.ScheduledID, g.ID)
	}
	list, err := alice.ScheduledMessages(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("after its time: %+v, %v", list, err)
	}
	if m := list[0]; m.Status != client.ScheduledRefused || m.Code != wire.CodeNotMember || m.Reason != no.Reason || m.RefusedAt.Before(soon.Add(-time.Millisecond)) || m.Text != "stand-up!" {
		t.Errorf("listed %+v; want refused, not_member, the notice's reason, after %v", m, soon)
	}
	hist, err := bob.History(ctx, g.ID, client.HistoryQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Text == "stand-up!" {
			t.Errorf("the refused message was sent: %+v", m)
		}
	}
	if err := alice.CancelScheduled(ctx, ack.ScheduledID); err != nil {
		t.Fatalf("dismissing the refused message: %v", err)
	}
	if list, err := alice.ScheduledMessages(ctx); err != nil || len(list) != 0 {
		t.Errorf("after the cancel: %+v, %v", list, err)
	}
}

// In the cluster: two logic nodes share PostgreSQL and both run the
// scheduler; each due message is still sent once, each refused one
// refused once with one notice.
func TestScheduledRefusedInTheCluster(t *testing.T) {
	logics, _ := clusterWith(t, 2, postgresSchema(t), "gw-a")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alice, aliceN := noticeClient(t, logics[0], "alice", "a", "tcp", true)
	bob, bobBox := newClient(t, logics[1], "bob", "b", "ws", true)
	g, err := bob.CreateGroup(ctx, client.NewGroup{Name: "team", Members: []string{"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	const each = 10
	soon := time.Now().Add(2 * time.Second)
	refused := map[int64]bool{}
	for i := range each {
		ack, err := alice.Send(ctx, client.SendRequest{ToGroup: g.ID, Text: fmt.Sprint("group ", i), SendAt: soon})
		if err != nil {
			t.Fatal(err)
		}
		refused[ack.ScheduledID] = true
		if _, err := alice.Send(ctx, client.SendRequest{ToUser: "bob", Text: fmt.Sprint("private ", i), SendAt: soon}); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.LeaveGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the private messages", func() bool {
		n := 0
		for _, text := range bobBox.texts() {
			if len(text) > 8 && text[:8] == "private " {
				n++
			}
		}
		return n >= each
	})
	waitFor(t, "every refusal", func() bool {
		list, err := alice.ScheduledMessages(ctx)
		if err != nil || len(list) != each {
			return false
		}
		for _, m := range list {
			if m.Status != client.ScheduledRefused || !refused[m.ID] {
				return false
			}
		}
		return true
	})
	time.Sleep(3 * time.Second) // a second send or notice, if any, would have come by now
	seen := map[string]int{}
	for _, text := range bobBox.texts() {
		seen[text]++
	}
	for i := range each {
		if text := fmt.Sprint("private ", i); seen[text] != 1 {
			t.Errorf("bob got %q %d times, want once", text, seen[text])
		}
	}
	notices := map[int64]int{}
	aliceN.mu.Lock()
	for _, no := range aliceN.got {
		if no.Type == client.NoticeScheduledRefused {
			notices[no.ScheduledID]++
		}
	}
	aliceN.mu.Unlock()
	for id := range refused {
		if notices[id] != 1 {
			t.Errorf("scheduled %d: %d notices, want 1", id, notices[id])
		}
	}
	if len(notices) != each {
		t.Errorf("notices for %d messages, want %d", len(notices), each)
	}
}
