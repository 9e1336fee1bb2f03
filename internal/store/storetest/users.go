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
	got, err := s.UserByName(ctx, "carol")
	if err != nil || got.ID != dir.ID || got.Username != "Carol" || got.AuthSource != "ldap" ||
		got.DisplayName != "Carol Dir" || got.Email != "carol@example.org" || got.PasswordHash != "" {
		t.Errorf("UserByName(carol) = %+v, %v; want %+v", got, err, dir)
	}

	// One namespace: neither kind of user can take the other's name.
	_, err = s.CreateUser(ctx, "CAROL", "hash")
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
