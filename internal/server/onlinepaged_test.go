package server

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/proto/wire"
)

// The long connection's online{prefix, limit, cursor} (issue 13): the
// pages of GET /v1/users/online, under the same visibility rule, through
// the SDK's OnlinePaged, on SQLite and PostgreSQL (contacts are read from
// the store); online{} with no field stays the whole list.
func TestOnlinePagedOnTheLongConnection(t *testing.T) {
	for _, vis := range []string{"contacts", "all"} {
		t.Run("sqlite/"+vis, func(t *testing.T) { testOnlinePaged(t, "", vis) })
		t.Run("postgres/"+vis, func(t *testing.T) { testOnlinePaged(t, postgresSchema(t), vis) })
	}
}

func onlineNames(users []client.OnlineUser) []string {
	out := []string{}
	for _, u := range users {
		out = append(out, u.Username)
	}
	return out
}

func testOnlinePaged(t *testing.T, dsn, vis string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store, cfg.OnlineVisibility = dsn, vis
	n := startNode(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	clients := map[string]*client.Client{}
	for _, name := range []string{"Bob", "bobby", "boris", "carol", "dave"} {
		clients[name], _ = newClient(t, n, name, "d-"+name, "ws", true)
	}
	// alice's contacts: Bob (a chat), bobby (a group), boris (a friend); carol and dave are strangers.
	if _, err := alice.SendText(ctx, "Bob", "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := clients["bobby"].CreateGroup(ctx, client.NewGroup{Name: "team", Members: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.RequestFriend(ctx, "boris"); err != nil {
		t.Fatal(err)
	}
	if err := clients["boris"].AcceptFriend(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	want := []string{"alice", "Bob", "bobby", "boris"}
	if vis == "all" {
		want = []string{"alice", "Bob", "bobby", "boris", "carol", "dave"}
	}

	// Pages of two, to the end: the same as the HTTP pages.
	var got, httpGot []string
	q := client.OnlineQuery{Limit: 2}
	for range 10 {
		p, err := alice.OnlinePaged(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Users) > 2 {
			t.Fatalf("a page of %d users with limit 2", len(p.Users))
		}
		got = append(got, onlineNames(p.Users)...)
		hp, err := alice.OnlineUsers(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		httpGot = append(httpGot, onlineNames(hp.Users)...)
		if p.NextCursor != hp.NextCursor {
			t.Fatalf("next cursor %q on the long connection, %q over HTTP", p.NextCursor, hp.NextCursor)
		}
		if p.NextCursor == "" {
			break
		}
		q.Cursor = p.NextCursor
	}
	if !slices.Equal(got, want) || !slices.Equal(httpGot, want) {
		t.Fatalf("alice's pages: %v (HTTP %v), want %v", got, httpGot, want)
	}

	// A prefix, case-insensitively; the devices are named.
	p, err := alice.OnlinePaged(ctx, client.OnlineQuery{Prefix: "BO"})
	if err != nil || !slices.Equal(onlineNames(p.Users), []string{"Bob", "bobby", "boris"}) || p.NextCursor != "" {
		t.Fatalf("prefix BO: %v (next %q), %v", onlineNames(p.Users), p.NextCursor, err)
	}
	if !slices.Equal(p.Users[0].Devices, []string{"d-Bob"}) {
		t.Errorf("Bob's devices %v, want [d-Bob]", p.Users[0].Devices)
	}
	if p, err := alice.OnlinePaged(ctx, client.OnlineQuery{Prefix: "zz"}); err != nil || len(p.Users) != 0 || p.NextCursor != "" {
		t.Errorf("prefix zz: %v, %v; want nobody", onlineNames(p.Users), err)
	}
	// A page larger than 500 counts as 500.
	if p, err := alice.OnlinePaged(ctx, client.OnlineQuery{Limit: 100000}); err != nil || !slices.Equal(onlineNames(p.Users), want) {
		t.Errorf("limit 100000: %v, %v", onlineNames(p.Users), err)
	}
	// The unpaged list is unchanged (sorted by name as bytes, as before).
	if all, err := alice.Online(ctx); err != nil || !slices.Equal(onlineNames(all), slices.Sorted(slices.Values(want))) {
		t.Errorf("online{}: %v, %v; want %v", onlineNames(all), err, want)
	}

	// Bad input is answered bad_request with a reason.
	var e *client.Error
	for _, bad := range []client.OnlineQuery{{Prefix: "b!"}, {Prefix: "b o"}, {Prefix: "abcdefghijklmnopqrstuvwxyz0123456789"}, {Cursor: "not a cursor!"}} {
		if _, err := alice.OnlinePaged(ctx, bad); !errors.As(err, &e) || e.Code != wire.CodeBadRequest {
			t.Errorf("OnlinePaged(%+v) = %v; want bad_request", bad, err)
		}
	}
	if _, err := alice.OnlinePaged(ctx, client.OnlineQuery{Limit: -1}); err == nil {
		t.Error("a negative limit was sent")
	}
}
