package logic

import (
	"context"
	"strings"
	"testing"

	"github.com/magpie-im/magpie/proto/wire"
)

func TestLookupUser(t *testing.T) {
	s, _ := newTestService(t, nil)
	ctx := context.Background()
	alice := login(t, s, "alice", "", "").Identity
	bob := login(t, s, "Bob", "", "").Identity
	if err := s.Block(ctx, bob, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Bob", "bob", "BOB"} {
		got, err := s.LookupUser(ctx, alice, name)
		if err != nil || got != (UserInfo{UserID: bob.UserID, Username: "Bob"}) {
			t.Fatalf("LookupUser(%q) = %+v, %v; want bob's id and spelling (a block is not told)", name, got, err)
		}
	}
	tests := []struct {
		name, arg string
		code      wire.Code
		msg       string
	}{
		{"unknown", "carol", wire.CodeNotFound, "no such user: carol"},
		{"invalid", "a.b", wire.CodeBadRequest, "username may contain only letters, digits, '_' and '-'"},
		{"too long", strings.Repeat("x", 33), wire.CodeBadRequest, "username must be 2-32 characters"},
		{"no prefix search", "b%", wire.CodeBadRequest, "username may contain only letters, digits, '_' and '-'"},
	}
	for _, tt := range tests {
		_, err := s.LookupUser(ctx, alice, tt.arg)
		if Code(err) != tt.code || Message(err) != tt.msg {
			t.Errorf("%s: %v %q, want %v %q", tt.name, Code(err), Message(err), tt.code, tt.msg)
		}
	}
}
