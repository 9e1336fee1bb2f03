package logic

import (
	"context"
	"slices"
	"testing"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

func names(users []OnlineUser) []string {
	out := []string{}
	for _, u := range users {
		out = append(out, u.Username)
	}
	return out
}

func TestOnlineVisibility(t *testing.T) {
	for _, vis := range []OnlineVisibility{"", OnlineAll} {
		t.Run("visibility="+string(vis), func(t *testing.T) {
			s, bus := newTestService(t, func(c *Config) { c.OnlineVisibility = vis })
			ctx := context.Background()
			who := map[string]Identity{}
			for i, n := range []string{"alice", "Bob", "bobby", "carol", "dave", "erin"} {
				id := login(t, s, n, "d1", "").Identity
				who[n] = id
				if n != "erin" { // erin is offline
					bus.Add(&clusterpb.ConnRef{Gateway: "gw1", Conn: uint64(i + 1), UserId: id.UserID, Device: "d1"})
				}
			}
			// alice: a chat with Bob, a friend carol, a group with bobby; dave and erin are strangers.
			if _, err := s.Send(ctx, who["alice"], SendRequest{ToUser: "Bob", Text: "hi"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RequestFriend(ctx, who["alice"], "carol"); err != nil {
				t.Fatal(err)
			}
			if err := s.AcceptFriend(ctx, who["carol"], "alice"); err != nil {
				t.Fatal(err)
			}
			if _, err := s.CreateGroup(ctx, who["bobby"], "team", []string{"alice"}, ""); err != nil {
				t.Fatal(err)
			}
			page, err := s.OnlinePage(ctx, who["alice"], OnlineQuery{})
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"alice", "Bob", "bobby", "carol"}
			if vis == OnlineAll {
				want = []string{"alice", "Bob", "bobby", "carol", "dave"}
			}
			if got := names(page.Users); !slices.Equal(got, want) || page.NextCursor != "" {
				t.Fatalf("alice sees %v (next %q), want %v", got, page.NextCursor, want)
			}
			if u := page.Users[0]; !slices.Equal(u.Devices, []string{"d1"}) {
				t.Errorf("alice's devices %v", u.Devices)
			}
			// The long connection's list follows the same rule.
			if all, err := s.Online(ctx, who["dave"]); err != nil || (vis != OnlineAll && !slices.Equal(names(all), []string{"dave"})) {
				t.Errorf("dave (no contacts) sees %v, %v", names(all), err)
			}

			// A prefix, case-insensitively, and pages of one.
			var got []string
			q := OnlineQuery{Prefix: "BO", Limit: 1}
			for range 5 {
				p, err := s.OnlinePage(ctx, who["alice"], q)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, names(p.Users)...)
				if p.NextCursor == "" {
					break
				}
				q.Cursor = p.NextCursor
			}
			if !slices.Equal(got, []string{"Bob", "bobby"}) {
				t.Errorf("prefix BO in pages of 1: %v, want [Bob bobby]", got)
			}

			for _, bad := range []OnlineQuery{{Prefix: "a b"}, {Prefix: "ü"}, {Prefix: "abcdefghijklmnopqrstuvwxyz0123456"}, {Cursor: "x"}, {Cursor: "no spaces"}} {
				if _, err := s.OnlinePage(ctx, who["alice"], bad); Code(err) != wire.CodeBadRequest {
					t.Errorf("OnlinePage(%+v): %v, want bad_request", bad, err)
				}
			}
		})
	}
}

func TestOnlineIsAReservedName(t *testing.T) {
	s, _ := newTestService(t, nil)
	for _, n := range []string{"online", "ONLINE"} {
		if _, err := s.Register(context.Background(), n, "password1"); Code(err) != wire.CodeBadRequest {
			t.Errorf("Register(%q): %v, want bad_request (reserved)", n, err)
		}
	}
	if _, err := s.Register(context.Background(), "online2", "password1"); err != nil {
		t.Errorf("Register(online2): %v", err)
	}
}
