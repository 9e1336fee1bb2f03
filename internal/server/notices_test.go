package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// noticeBox collects a client's notices as "type actor group" lines.
type noticeBox struct {
	mu  sync.Mutex
	got []client.Notice
}

func (b *noticeBox) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []string{}
	for _, n := range b.got {
		out = append(out, strings.TrimSpace(fmt.Sprintf("%s %s %s", n.Type, n.Actor, n.GroupName)))
	}
	return out
}

// noticeClient connects user's device (registering the user first if
// register) and records its notices.
func noticeClient(t *testing.T, n *Node, user, device, transport string, register bool) (*client.Client, *noticeBox) {
	t.Helper()
	box := &noticeBox{}
	c := connectClient(t, n, user, device, transport, register, client.Options{
		OnNotice: func(no client.Notice) { box.mu.Lock(); box.got = append(box.got, no); box.mu.Unlock() },
	})
	return c, box
}

// Live notices (issue 13): a friend request, its acceptance, a join
// request to the owner and admins, being added to and removed from a group
// reach the online devices of the user concerned, over TCP and WebSocket,
// on SQLite and PostgreSQL; never the actor, never anyone else.
func TestLiveNotices(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testLiveNotices(t, "") })
	t.Run("postgres", func(t *testing.T) { testLiveNotices(t, postgresSchema(t)) })
}

func testLiveNotices(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, aliceA := noticeClient(t, n, "alice", "a1", "tcp", true)
	_, aliceB := noticeClient(t, n, "alice", "a2", "ws", false)
	bob, bobN := noticeClient(t, n, "bob", "b", "ws", true)
	carol, carolN := noticeClient(t, n, "carol", "c", "tcp", true)
	dave, daveN := noticeClient(t, n, "dave", "d", "ws", true)
	wait := func(who string, box *noticeBox, count int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d notices of %s", count, who), func() bool { return len(box.lines()) >= count })
	}

	// Friends: a request, then its acceptance (to both of alice's devices);
	// a mutual request makes friends at once.
	if _, err := alice.RequestFriend(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	wait("bob", bobN, 1)
	if err := bob.AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	wait("alice's a1", aliceA, 1)
	wait("alice's a2", aliceB, 1)
	if _, err := carol.RequestFriend(ctx, "dave"); err != nil {
		t.Fatal(err)
	}
	wait("dave", daveN, 1)
	if _, err := dave.RequestFriend(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	wait("carol", carolN, 1)

	// Groups: carol is added at the creation, made an admin; dave asks to
	// join (bob and carol hear of it), carol lets him in; bob adds alice,
	// removes dave; alice leaves (no notice: she did it).
	g, err := bob.CreateGroup(ctx, client.NewGroup{Name: "team", Members: []string{"carol"}, JoinPolicy: client.JoinApproval})
	if err != nil {
		t.Fatal(err)
	}
	wait("carol", carolN, 2)
	if err := bob.SetRole(ctx, g.ID, "carol", client.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	wait("bob", bobN, 2)
	wait("carol", carolN, 3)
	if err := carol.ApproveJoin(ctx, g.ID, "dave"); err != nil {
		t.Fatal(err)
	}
	wait("dave", daveN, 2)
	if _, err := bob.AddMembers(ctx, g.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	wait("alice's a1", aliceA, 2)
	if err := bob.RemoveMember(ctx, g.ID, "dave"); err != nil {
		t.Fatal(err)
	}
	wait("dave", daveN, 3)
	if err := alice.LeaveGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	// A last notice to everyone, so that nothing else is still on its way.
	if _, err := dave.RequestFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.RequestFriend(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.RequestFriend(ctx, "carol"); err != nil {
		t.Fatal(err)
	}
	if _, err := carol.RequestFriend(ctx, "dave"); err != nil { // friends already: says so again
		t.Fatal(err)
	}
	want := map[string][]string{
		"alice a1": {"friend.accepted bob", "group.added bob team", "friend.requested dave"},
		"alice a2": {"friend.accepted bob", "group.added bob team", "friend.requested dave"},
		"bob":      {"friend.requested alice", "group.join_requested dave team", "friend.requested dave"},
		"carol":    {"friend.accepted dave", "group.added bob team", "group.join_requested dave team", "friend.requested alice"},
		"dave":     {"friend.requested carol", "group.added carol team", "group.removed bob team", "friend.accepted carol"},
	}
	boxes := map[string]*noticeBox{"alice a1": aliceA, "alice a2": aliceB, "bob": bobN, "carol": carolN, "dave": daveN}
	for who, box := range boxes {
		wait(who, box, len(want[who]))
	}
	time.Sleep(100 * time.Millisecond) // room for a notice too many
	for who, box := range boxes {
		if got := box.lines(); !slices.Equal(got, want[who]) {
			t.Errorf("%s's notices:\n  %q\nwant\n  %q", who, got, want[who])
		}
	}
	// The fields: ids, the group, a time.
	bobN.mu.Lock()
	jr := bobN.got[1]
	bobN.mu.Unlock()
	if jr.GroupID != g.ID || jr.ActorID != dave.UserID() || time.Since(jr.At) > time.Minute || jr.At.After(time.Now()) {
		t.Errorf("bob's join request notice %+v; want group %s, actor %d, a time of now", jr, g.ID, dave.UserID())
	}
	// The durable state is still what the HTTP API lists.
	reqs, err := bob.JoinRequests(ctx, g.ID)
	if err != nil || len(reqs) != 0 {
		t.Errorf("join requests after the approval: %+v, %v", reqs, err)
	}
	fl, err := bob.Friends(ctx)
	if err != nil || len(fl.Incoming) != 1 || fl.Incoming[0].Username != "dave" {
		t.Errorf("bob's friend requests: %+v, %v; want dave's", fl.Incoming, err)
	}
}
