package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// Friends end to end (SDK and HTTP) on SQLite and PostgreSQL: add
// policies, remarks and groups, the incremental sync, and bad input.
func TestFriendFeatures(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testFriendFeatures(t, "") })
	t.Run("postgres", func(t *testing.T) { testFriendFeatures(t, postgresSchema(t)) })
}

func testFriendFeatures(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	bob, _ := newClient(t, n, "bob", "b", "ws", true)
	carol, _ := newClient(t, n, "carol", "c", "ws", true)

	// Policies: bob lets anyone add him, carol nobody.
	if fl, err := bob.Friends(ctx); err != nil || fl.Policy != client.FriendApprove || fl.Seq != 0 {
		t.Fatalf("bob's list = %+v, %v; want the approve policy, seq 0", fl, err)
	}
	if err := bob.SetFriendPolicy(ctx, client.FriendAnyone); err != nil {
		t.Fatal(err)
	}
	if st, err := alice.RequestFriend(ctx, "bob"); err != nil || st != client.FriendsNow {
		t.Fatalf("alice adds bob (anyone): %v, %v; want friends at once", st, err)
	}
	if err := carol.SetFriendPolicy(ctx, client.FriendNobody); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.RequestFriend(ctx, "carol"); err == nil || !strings.Contains(err.Error(), "does not accept friend requests") {
		t.Fatalf("alice adds carol (nobody): %v; want a refusal", err)
	}
	if st, err := carol.RequestFriend(ctx, "alice"); err != nil || st != client.FriendRequested {
		t.Fatalf("carol asks alice: %v, %v", st, err)
	}
	if err := alice.AcceptFriend(ctx, "carol"); err != nil {
		t.Fatal(err)
	}

	// Remarks and groups are alice's own.
	remark, work := "Bobby", "work"
	f, err := alice.UpdateFriend(ctx, "bob", client.FriendUpdate{Remark: &remark, Group: &work})
	if err != nil || f.Remark != "Bobby" || f.Group != "work" || f.Username != "bob" {
		t.Fatalf("UpdateFriend = %+v, %v", f, err)
	}
	if _, err := alice.UpdateFriend(ctx, "carol", client.FriendUpdate{Group: &work}); err != nil {
		t.Fatal(err)
	}
	groups, err := alice.FriendGroups(ctx)
	if err != nil || len(groups) != 1 || groups[0].Name != "work" || len(groups[0].Friends) != 2 {
		t.Fatalf("alice's groups = %+v, %v; want work with bob and carol", groups, err)
	}
	if fl, _ := bob.Friends(ctx); len(fl.Friends) != 1 || fl.Friends[0].Remark != "" {
		t.Errorf("bob's view = %+v; alice's remark is hers", fl.Friends)
	}

	// Sync: everything from 0, then only what changed after.
	all, err := alice.SyncFriends(ctx, 0)
	if err != nil || len(all.Changes) != 2 || all.More || all.Seq == 0 {
		t.Fatalf("full sync = %+v, %v; want bob and carol", all, err)
	}
	if none, err := alice.SyncFriends(ctx, all.Seq); err != nil || len(none.Changes) != 0 || none.Seq != all.Seq {
		t.Errorf("sync at the last seq = %+v, %v; want nothing new", none, err)
	}
	if err := carol.RemoveFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	empty := ""
	if _, err := alice.UpdateFriend(ctx, "bob", client.FriendUpdate{Remark: &empty}); err != nil {
		t.Fatal(err)
	}
	next, err := alice.SyncFriends(ctx, all.Seq)
	if err != nil || len(next.Changes) != 2 || next.Seq != all.Seq+2 {
		t.Fatalf("sync after two changes = %+v, %v", next, err)
	}
	if c := next.Changes[0]; c.Username != "carol" || !c.Removed {
		t.Errorf("first change = %+v; want carol removed", c)
	}
	if c := next.Changes[1]; c.Username != "bob" || c.Removed || c.Remark != "" || c.Group != "work" {
		t.Errorf("second change = %+v; want bob, remark cleared, still in work", c)
	}

	// Bad input gets a clear 400 (or 404) and changes nothing.
	a := signup(t, n, "alice", false)
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{"PUT", "/v1/friends/policy", map[string]string{"policy": "maybe"}, 400, `policy must be "approve", "anyone" or "nobody"`},
		{"PATCH", "/v1/friends/bob", map[string]string{}, 400, "nothing to change"},
		{"PATCH", "/v1/friends/bob", map[string]string{"remark": strings.Repeat("x", 65)}, 400, "remark must be at most 64 bytes"},
		{"PATCH", "/v1/friends/bob", map[string]string{"group": strings.Repeat("x", 33)}, 400, "group must be at most 32 bytes"},
		{"PATCH", "/v1/friends/bob", map[string]string{"remark": "a\nb"}, 400, "control characters"},
		{"PATCH", "/v1/friends/bob", map[string]string{"group": " work"}, 400, "spaces"},
		{"PATCH", "/v1/friends/carol", map[string]string{"remark": "C"}, 404, "carol is not your friend"},
		{"PATCH", "/v1/friends/nosuchuser", map[string]string{"remark": "C"}, 404, "no such user"},
		{"GET", "/v1/friends/sync?since=-1", nil, 400, "since must be a non-negative integer"},
		{"GET", "/v1/friends/sync?limit=1001", nil, 400, "limit must be at most 1000"},
	} {
		r := a.do(tc.method, tc.path, tc.body)
		if r.status != tc.status || !strings.Contains(errMessage(r), tc.want) {
			t.Errorf("%s %s %v = %d %v; want %d %q", tc.method, tc.path, tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	if r := a.do("GET", "/v1/friends/sync?since=0&limit=1", nil); r.status != 200 || r.body["more"] != true || len(r.body["changes"].([]any)) != 1 {
		t.Errorf("a page of one = %d %v; want one change and more", r.status, r.body)
	}
	if fl, _ := alice.Friends(ctx); len(fl.Friends) != 1 || fl.Friends[0].Group != "work" || fl.Seq != next.Seq {
		t.Errorf("alice's list after the bad input = %+v", fl)
	}
}

// errMessage is the message of an error reply.
func errMessage(r reply) string {
	e, _ := r.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}
