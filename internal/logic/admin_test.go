package logic

import (
	"context"
	"strings"
	"testing"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/proto/wire"
	"golang.org/x/crypto/bcrypt"
)

// Imported users log in with their old hashes (Argon2id or bcrypt), or
// through their source; an import runs again without changing anything;
// each bad entry is refused on its own.
func TestImportUsers(t *testing.T) {
	dir := newFakeSource(auth.LDAP)
	dir.add("carol", "dir-pass-1", "Carol", "")
	s, _ := newTestService(t, func(c *Config) { c.Auth = chainOf(auth.Local, dir) })
	ctx := context.Background()
	argon, err := hashPassword("argon-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte("bcrypt-pass-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	login(t, s, "alice", "", "")
	users := []ImportUser{
		{Username: "ann", PasswordHash: argon, DisplayName: "Ann"},
		{Username: "ben", PasswordHash: string(bc), AuthSource: "local"},
		{Username: "carol", AuthSource: auth.LDAP},
		{Username: "alice", PasswordHash: argon},                                                                 // taken by a local user: exists
		{Username: "ANN", PasswordHash: argon},                                                                   // twice in one import
		{Username: "dan"},                                                                                        // local without a hash
		{Username: "eve", PasswordHash: "plain-text"},                                                            // not a hash
		{Username: "fay", PasswordHash: argon, AuthSource: auth.LDAP},                                            // a hash for a directory user
		{Username: "g.h", PasswordHash: argon},                                                                   // bad name
		{Username: "ivy", PasswordHash: "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5"}, // 4 GiB
		{Username: "jo", AuthSource: "kerberos"},
	}
	res, err := s.ImportUsers(ctx, 0, users)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ImportCreated, ImportCreated, ImportCreated, ImportExists, "bad_request", "bad_request", "bad_request", "bad_request", "bad_request", "bad_request", "bad_request"}
	for i, r := range res {
		got := r.Status
		if r.Err != nil {
			got = Code(r.Err).String()
		}
		if got != want[i] {
			t.Errorf("%s: %q (%v), want %q", users[i].Username, got, r.Err, want[i])
		}
	}
	for _, c := range []struct{ user, pass string }{{"ann", "argon-pass-1"}, {"ben", "bcrypt-pass-1"}, {"carol", "dir-pass-1"}} {
		if _, err := s.Login(ctx, c.user, c.pass, "", ""); err != nil {
			t.Errorf("login %s after the import: %v", c.user, err)
		}
	}
	_, err = s.Login(ctx, "ben", "wrong-pass", "", "")
	wantCode(t, "wrong password for a bcrypt user", err, wire.CodeInvalidCredential)

	again, err := s.ImportUsers(ctx, 0, users[:3])
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range again {
		if r.Status != ImportExists || r.UserID != res[i].UserID {
			t.Errorf("again %s: %+v, want exists with id %d", users[i].Username, r, res[i].UserID)
		}
	}
	// The same name from another source is a conflict, not "exists".
	conflict, err := s.ImportUsers(ctx, 0, []ImportUser{{Username: "ann", AuthSource: auth.OIDC}})
	if err != nil || Code(conflict[0].Err) != wire.CodeConflict {
		t.Errorf("ann from oidc: %+v, %v; want conflict", conflict, err)
	}
	_, err = s.ImportUsers(ctx, 0, nil)
	wantCode(t, "empty import", err, wire.CodeBadRequest)
	_, err = s.ImportUsers(ctx, 0, make([]ImportUser, MaxImport+1))
	wantCode(t, "oversized import", err, wire.CodeTooLarge)
	if !strings.HasPrefix(argon, "$argon2id$") {
		t.Fatalf("hash %q", argon)
	}
}
