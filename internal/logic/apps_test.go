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
