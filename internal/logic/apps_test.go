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
