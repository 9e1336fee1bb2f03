package logic

import (
	"context"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// An app is usable on the node that made it at once, even right after
// the node read its app list (which a miss reloads at most once a second).
func TestCreatedAppIsFoundAtOnce(t *testing.T) {
	s, _ := newTestService(t, nil)
	ctx := context.Background()
	login(t, s, "alice", "", "") // reads the app list
	if _, err := s.CreateApp(ctx, "acme", store.AppSettings{}); err != nil {
		t.Fatal(err)
	}
	u, err := s.RegisterFrom(ctx, Client{App: "acme"}, "bob", "password1")
	if err != nil {
		t.Fatalf("register in the app just made: %v", err)
	}
	if u.AppID == store.DefaultApp {
		t.Fatalf("bob registered in the default app, want acme")
	}
}

// Another app's group events never reach the server's webhooks (the
// default app's), a dissolved group's included: it has no owner left to
// tell its app by.
func TestAppGroupEventsSkipServerHooks(t *testing.T) {
	hooks := &fakeHooks{}
	s, _ := newTestService(t, func(c *Config) { c.Hooks = hooks })
	ctx := context.Background()
	if _, err := s.CreateApp(ctx, "acme", store.AppSettings{}); err != nil {
		t.Fatal(err)
	}
	var ids []Identity
	for _, name := range []string{"ann", "ben"} {
		if _, err := s.RegisterFrom(ctx, Client{App: "acme"}, name, "password1"); err != nil {
			t.Fatal(err)
		}
		res, err := s.LoginFrom(ctx, Client{App: "acme"}, name, "password1", "", "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Identity)
	}
	g, err := s.CreateGroup(ctx, ids[0], "g", []string{"ben"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LeaveGroup(ctx, ids[1], g.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DissolveGroup(ctx, ids[0], g.ID); err != nil {
		t.Fatal(err)
	}
	if got := hooks.types(); len(got) != 0 {
		t.Fatalf("the server's hooks got acme's events %v", got)
	}
}

// With two apps, the online list, a user's broadcast and a push to
// everyone hold only the app's users.
func TestOnlineAndBroadcastStayInApp(t *testing.T) {
	// Everyone of the app may be seen: the app is the only filter here.
	s, bus := newTestService(t, func(c *Config) {
		c.AllowBroadcast = true
		c.OnlineVisibility = OnlineAll
	})
	ctx := context.Background()
	root := login(t, s, "root", "", "").Identity
	_, err := s.CreateApp(ctx, "acme", store.AppSettings{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterFrom(ctx, Client{App: "acme"}, "ann", "password1"); err != nil {
		t.Fatal(err)
	}
	res, err := s.LoginFrom(ctx, Client{App: "acme"}, "ann", "password1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	ann := res.Identity
	connect(bus, "gw1", 1, root)
	connect(bus, "gw2", 2, ann)

	for _, tc := range []struct {
		id   Identity
		want string
	}{{root, "root"}, {ann, "ann"}} {
		users, err := s.Online(ctx, tc.id)
		if err != nil || len(users) != 1 || users[0].Username != tc.want {
			t.Errorf("Online(app %d) = %+v, %v; want %s alone", tc.id.AppID, users, err, tc.want)
		}
	}

	only := func(what, gw string, conn uint64) {
		t.Helper()
		for _, d := range bus.waitDeliveries(t, 1) {
			if d.gateway != gw || len(d.conns) != 1 || d.conns[0] != conn {
				t.Errorf("%s: delivered to %s %v, want %s's connection %d alone", what, d.gateway, d.conns, gw, conn)
			}
		}
	}
	if _, err := s.Send(ctx, ann, SendRequest{Broadcast: true, Text: "acme only"}); err != nil {
		t.Fatal(err)
	}
	only("ann's broadcast", "gw2", 2)
	if _, err := s.Push(ctx, PushRequest{AppID: store.DefaultApp, KeyID: "ops", Everyone: true, Transient: true, Text: "default only"}); err != nil {
		t.Fatal(err)
	}
	only("the default app's push to everyone", "gw1", 1)
}
