package storetest

import (
	"maps"
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testProfiles: an update sets only the fields given, Custom replaces the
// set, reads return the profile, and a deleted user has none to update.
func testProfiles(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	name, avatar := "Alice A.", "https://cdn.example/a.png"
	custom := map[string]string{"title": "CTO", "team": "core"}
	u, err := s.UpdateProfile(ctx, alice.ID, store.ProfileUpdate{DisplayName: &name, AvatarURL: &avatar, Custom: &custom})
	if err != nil || u.DisplayName != name || u.AvatarURL != avatar || !maps.Equal(u.Custom, custom) {
		t.Fatalf("UpdateProfile = %+v, %v", u, err)
	}
	other := "Al"
	if u, err = s.UpdateProfile(ctx, alice.ID, store.ProfileUpdate{DisplayName: &other}); err != nil || u.AvatarURL != avatar || !maps.Equal(u.Custom, custom) {
		t.Errorf("UpdateProfile of the name alone = %+v, %v; want the rest kept", u, err)
	}
	none := map[string]string{}
	if _, err := s.UpdateProfile(ctx, alice.ID, store.ProfileUpdate{Custom: &none}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UserByName(ctx, store.DefaultApp, "alice")
	if err != nil || got.DisplayName != "Al" || got.AvatarURL != avatar || len(got.Custom) != 0 {
		t.Errorf("UserByName after the updates = %+v, %v", got, err)
	}
	res, err := s.ImportUsers(ctx, []store.User{{Username: "dave", PasswordHash: "h", AvatarURL: avatar, Custom: custom}})
	if err != nil || res[0].Existing {
		t.Fatalf("ImportUsers with a profile = %+v, %v", res, err)
	}
	if d, err := s.UserByID(ctx, res[0].User.ID); err != nil || d.AvatarURL != avatar || !maps.Equal(d.Custom, custom) {
		t.Errorf("the imported dave = %+v, %v; want his avatar and fields", d, err)
	}
	_, err = s.UpdateProfile(ctx, 99999, store.ProfileUpdate{DisplayName: &name})
	wantErr(t, "UpdateProfile of no user", err, store.ErrNotFound)
	if err := s.DeleteUser(ctx, alice.ID, false, at(1)); err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateProfile(ctx, alice.ID, store.ProfileUpdate{DisplayName: &name})
	wantErr(t, "UpdateProfile of a deleted user", err, store.ErrNotFound)
}
