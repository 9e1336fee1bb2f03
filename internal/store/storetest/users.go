package storetest

import (
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testExternalUsers: a user of an outside source keeps its source and
// profile, has no password hash, shares the one namespace with local
// accounts (either way round), and SetProfile replaces the profile.
func testExternalUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	local := mustUser(t, s, "alice")
	if local.AuthSource != "local" {
		t.Errorf("CreateUser: AuthSource %q, want local", local.AuthSource)
	}
	if got, err := s.UserByID(ctx, local.ID); err != nil || got.AuthSource != "local" || got.DisplayName != "" || got.Email != "" {
		t.Errorf("UserByID(local) = %+v, %v; want source local and no profile", got, err)
	}

	dir, err := s.CreateExternalUser(ctx, store.User{Username: "Carol", AuthSource: "ldap", DisplayName: "Carol Dir", Email: "carol@example.org", PasswordHash: "ignored"})
	if err != nil {
		t.Fatalf("CreateExternalUser: %v", err)
	}
	if dir.ID == 0 || dir.ID == local.ID || dir.PasswordHash != "" || dir.CreatedAt.IsZero() {
		t.Fatalf("CreateExternalUser = %+v, want a new id, no password hash and a creation time", dir)
	}
	got, err := s.UserByName(ctx, store.DefaultApp, "carol")
	if err != nil || got.ID != dir.ID || got.Username != "Carol" || got.AuthSource != "ldap" ||
		got.DisplayName != "Carol Dir" || got.Email != "carol@example.org" || got.PasswordHash != "" {
		t.Errorf("UserByName(carol) = %+v, %v; want %+v", got, err, dir)
	}

	// One namespace: neither kind of user can take the other's name.
	_, err = s.CreateUser(ctx, store.DefaultApp, "CAROL", "hash")
	wantErr(t, "CreateUser over a directory user", err, store.ErrExists)
	_, err = s.CreateExternalUser(ctx, store.User{Username: "Alice", AuthSource: "oidc"})
	wantErr(t, "CreateExternalUser over a local user", err, store.ErrExists)
	if _, err := s.CreateExternalUser(ctx, store.User{Username: "dave", AuthSource: "local"}); err == nil {
		t.Error("CreateExternalUser with source local: no error")
	}
	if _, err := s.CreateExternalUser(ctx, store.User{Username: "dave"}); err == nil {
		t.Error("CreateExternalUser without a source: no error")
	}

	if err := s.SetProfile(ctx, dir.ID, "Carol New", ""); err != nil {
		t.Fatalf("SetProfile: %v", err)
	}
	users, err := s.UsersByID(ctx, []int64{dir.ID})
	if err != nil || len(users) != 1 || users[0].DisplayName != "Carol New" || users[0].Email != "" || users[0].AuthSource != "ldap" {
		t.Errorf("UsersByID after SetProfile = %+v, %v; want display name Carol New, no email", users, err)
	}
	wantErr(t, "SetProfile(unknown)", s.SetProfile(ctx, dir.ID+1000, "x", "y"), store.ErrNotFound)
}

// testImportUsers: a batch lands in one call with each user's source,
// hash and profile; names taken before or earlier in the batch come back
// as the existing user, unchanged; importing again changes nothing.
func testImportUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	batch := []store.User{
		{Username: "Bob", PasswordHash: "hash-bob"},
		{Username: "carol", AuthSource: "ldap", DisplayName: "Carol", Email: "carol@example.org"},
		{Username: "ALICE", PasswordHash: "other"},
		{Username: "bob", PasswordHash: "again"},
	}
	res, err := s.ImportUsers(ctx, batch)
	if err != nil || len(res) != len(batch) {
		t.Fatalf("ImportUsers = %+v, %v", res, err)
	}
	bob, carol := res[0].User, res[1].User
	if res[0].Existing || bob.ID == 0 || bob.AuthSource != "local" || bob.PasswordHash != "hash-bob" {
		t.Errorf("bob: %+v", res[0])
	}
	if res[1].Existing || carol.AuthSource != "ldap" || carol.DisplayName != "Carol" || carol.PasswordHash != "" {
		t.Errorf("carol: %+v", res[1])
	}
	if !res[2].Existing || res[2].User.ID != alice.ID || res[2].User.PasswordHash != "hash-alice" {
		t.Errorf("alice, taken before: %+v", res[2])
	}
	if !res[3].Existing || res[3].User.ID != bob.ID || res[3].User.PasswordHash != "hash-bob" {
		t.Errorf("bob again in the batch: %+v", res[3])
	}
	if got, err := s.UserByName(ctx, store.DefaultApp, "CAROL"); err != nil || got.ID != carol.ID || got.Email != "carol@example.org" {
		t.Errorf("UserByName(carol) = %+v, %v", got, err)
	}
	again, err := s.ImportUsers(ctx, batch[:2])
	if err != nil || !again[0].Existing || !again[1].Existing || again[0].User.ID != bob.ID || again[1].User.ID != carol.ID {
		t.Errorf("import again = %+v, %v; want both existing", again, err)
	}
	if res, err := s.ImportUsers(ctx, nil); err != nil || len(res) != 0 {
		t.Errorf("ImportUsers(nil) = %+v, %v", res, err)
	}
}
