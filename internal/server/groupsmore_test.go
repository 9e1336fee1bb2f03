package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// Groups end to end (SDK and HTTP) on SQLite and PostgreSQL: joining by
// request with approval, the group's own member limit under
// --max-group-size, intro, notice and avatar, the sync of my groups, and
// bad input.
func TestGroupFeatures(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testGroupFeatures(t, "") })
	t.Run("postgres", func(t *testing.T) { testGroupFeatures(t, postgresSchema(t)) })
}

func testGroupFeatures(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.MaxGroupSize = 10
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	bob, _ := newClient(t, n, "bob", "b", "ws", true)
	carol, _ := newClient(t, n, "carol", "c", "ws", true)
	dave, _ := newClient(t, n, "dave", "d", "ws", true)

	before, err := bob.SyncGroups(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	g, err := alice.CreateGroup(ctx, client.NewGroup{Name: "club", Members: []string{"bob"}, JoinPolicy: client.JoinApproval,
		Intro: "we read", Notice: "line one\nline two", AvatarURL: "https://img.test/club.png", MaxMembers: 3})
	if err != nil || g.JoinPolicy != client.JoinApproval || g.Intro != "we read" || g.Notice != "line one\nline two" || g.MaxMembers != 3 || g.Version == 0 {
		t.Fatalf("CreateGroup = %+v, %v", g, err)
	}

	// carol and dave ask; bob (a plain member) can neither see nor answer.
	for _, u := range []*client.Client{carol, dave} {
		if r, err := u.JoinGroup(ctx, g.ID); err != nil || !r.Requested {
			t.Fatalf("JoinGroup of an approval group = %+v, %v; want a request", r, err)
		}
	}
	if _, err := bob.JoinRequests(ctx, g.ID); err == nil || !strings.Contains(err.Error(), "only the owner and admins") {
		t.Errorf("bob lists requests: %v", err)
	}
	if err := bob.ApproveJoin(ctx, g.ID, "carol"); err == nil {
		t.Error("bob approved a request")
	}
	reqs, err := alice.JoinRequests(ctx, g.ID)
	if err != nil || len(reqs) != 2 || reqs[0].Username != "carol" {
		t.Fatalf("alice's requests = %+v, %v", reqs, err)
	}
	if err := alice.ApproveJoin(ctx, g.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := alice.ApproveJoin(ctx, g.ID, "dave"); err == nil || !strings.Contains(err.Error(), "group is full") {
		t.Errorf("approving past max_members 3: %v; want group is full", err)
	}
	if err := alice.RejectJoin(ctx, g.ID, "dave"); err != nil {
		t.Fatal(err)
	}
	if err := alice.RejectJoin(ctx, g.ID, "dave"); err == nil || !strings.Contains(err.Error(), "no such join request") {
		t.Errorf("rejecting twice: %v", err)
	}
	if got, err := carol.Group(ctx, g.ID); err != nil || got.MemberCount != 3 || len(got.Members) != 3 {
		t.Errorf("carol's view after approval = %+v, %v; want a member of 3", got, err)
	}

	// Sync: bob sees the group once, then its change, then that he left.
	s1, err := bob.SyncGroups(ctx, before.Seq)
	if err != nil || len(s1.Groups) != 1 || s1.Groups[0].ID != g.ID || s1.Groups[0].MemberCount != 3 || s1.Groups[0].Left {
		t.Fatalf("bob's sync = %+v, %v; want the club with 3 members", s1, err)
	}
	notice := "moved to Friday"
	if _, err := alice.UpdateGroup(ctx, g.ID, client.GroupUpdate{Notice: &notice}); err != nil {
		t.Fatal(err)
	}
	s2, err := bob.SyncGroups(ctx, s1.Seq)
	if err != nil || len(s2.Groups) != 1 || s2.Groups[0].Notice != "moved to Friday" || s2.Seq <= s1.Seq {
		t.Fatalf("bob's sync after the notice = %+v, %v", s2, err)
	}
	if err := bob.LeaveGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	s3, err := bob.SyncGroups(ctx, s2.Seq)
	if err != nil || len(s3.Groups) != 1 || !s3.Groups[0].Left {
		t.Fatalf("bob's sync after leaving = %+v, %v; want the club, left", s3, err)
	}
	if s4, err := bob.SyncGroups(ctx, s3.Seq); err != nil || len(s4.Groups) != 0 || s4.Seq < s3.Seq {
		t.Errorf("bob's sync at the end = %+v, %v", s4, err)
	}

	// Bad input: clear errors, nothing changed.
	a := signup(t, n, "alice", false)
	path := "/v1/groups/" + g.ID
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		want         string
	}{
		{"PATCH", path, map[string]any{"max_members": 11}, 400, "max_members must be from 0 (the server's limit) to 10 (--max-group-size)"},
		{"PATCH", path, map[string]any{"max_members": -1}, 400, "max_members must be from 0"},
		{"PATCH", path, map[string]any{"max_members": 1}, 409, "the group has more members than that limit"},
		{"PATCH", path, map[string]any{"intro": strings.Repeat("x", 513)}, 400, "intro must be at most 512 bytes"},
		{"PATCH", path, map[string]any{"notice": strings.Repeat("x", 2049)}, 400, "notice must be at most 2048 bytes"},
		{"PATCH", path, map[string]any{"notice": "bell\a"}, 400, "without control characters other than line breaks"},
		{"PATCH", path, map[string]any{"avatar_url": "ftp://x/y"}, 400, "avatar_url must be an http:// or https:// URL"},
		{"PATCH", path, map[string]any{"join_policy": "maybe"}, 400, `join_policy must be "invite", "open" or "approval"`},
		{"PATCH", path, map[string]any{}, 400, "nothing to change"},
		{"POST", "/v1/groups", map[string]any{"name": "x", "max_members": 100}, 400, "max_members must be from 0"},
		{"POST", path + "/requests/nosuchuser/approve", nil, 404, "no such user"},
		{"POST", path + "/requests/bob/approve", nil, 404, "no such join request"},
		{"GET", "/v1/groups/sync?since=x", nil, 400, "since must be a non-negative integer"},
		{"GET", "/v1/groups/sync?limit=501", nil, 400, "limit must be at most 500"},
	} {
		r := a.do(tc.method, tc.path, tc.body)
		if r.status != tc.status || !strings.Contains(errMessage(r), tc.want) {
			t.Errorf("%s %s %v = %d %v; want %d %q", tc.method, tc.path, tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	if got, _ := alice.Group(ctx, g.ID); got.Notice != "moved to Friday" || got.MaxMembers != 3 || got.JoinPolicy != client.JoinApproval {
		t.Errorf("the group after the bad input = %+v", got)
	}
}
