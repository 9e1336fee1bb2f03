package storetest

import (
	"testing"

	"github.com/magpie-im/magpie/internal/store"
)

// testApps: the default app exists; an app's usernames are its own (the
// same name in two apps is two users, each found only in its app); names
// and key ids are unique; keys and settings are replaced whole.
func testApps(t *testing.T, s store.Store) {
	ctx := t.Context()
	apps, err := s.AppList(ctx)
	if err != nil || len(apps) != 1 || apps[0].ID != store.DefaultApp || apps[0].Name != store.DefaultAppName {
		t.Fatalf("AppList of a new store = %+v, %v; want the default app alone", apps, err)
	}
	yes := true
	keys := store.AppKeys{PushKeyID: "acme-push", PushSecret: "ps", AdminKeyID: "acme-admin", AdminSecret: "as"}
	acme, err := s.CreateApp(ctx, store.App{Name: "acme", Keys: keys,
		Settings: store.AppSettings{DevicePolicy: "single", RequireFriendship: &yes, Hosts: []string{"chat.acme.test"}}})
	if err != nil || acme.ID == store.DefaultApp || acme.ID == 0 {
		t.Fatalf("CreateApp(acme) = %+v, %v", acme, err)
	}
	_, err = s.CreateApp(ctx, store.App{Name: "acme"})
	wantErr(t, "CreateApp of a taken name", err, store.ErrExists)
	_, err = s.CreateApp(ctx, store.App{Name: "other", Keys: store.AppKeys{PushKeyID: "acme-push", PushSecret: "x"}})
	wantErr(t, "CreateApp with a taken key id", err, store.ErrExists)
	bare, err := s.CreateApp(ctx, store.App{Name: "bare"}) // no keys: the NULL key ids do not collide
	if err != nil {
		t.Fatalf("CreateApp without keys: %v", err)
	}

	def := mustUser(t, s, "alice")
	twin, err := s.CreateUser(ctx, acme.ID, "ALICE", "h")
	if err != nil || twin.ID == def.ID || twin.AppID != acme.ID {
		t.Fatalf("CreateUser(acme, ALICE) = %+v, %v; want a second user in acme", twin, err)
	}
	_, err = s.CreateUser(ctx, acme.ID, "alice", "h")
	wantErr(t, "CreateUser of a name taken in the app", err, store.ErrExists)
	for _, tt := range []struct {
		app  int64
		want int64
	}{{store.DefaultApp, def.ID}, {acme.ID, twin.ID}} {
		got, err := s.UserByName(ctx, tt.app, "Alice")
		if err != nil || got.ID != tt.want || got.AppID != tt.app {
			t.Errorf("UserByName(app %d, Alice) = %+v, %v; want user %d", tt.app, got, err, tt.want)
		}
	}
	_, err = s.UserByName(ctx, bare.ID, "alice")
	wantErr(t, "UserByName in an app without the user", err, store.ErrNotFound)
	if got, err := s.UserByID(ctx, def.ID); err != nil || got.AppID != store.DefaultApp {
		t.Errorf("UserByID(default user) = %+v, %v; want app %d", got, err, store.DefaultApp)
	}

	ext, err := s.CreateExternalUser(ctx, store.User{AppID: acme.ID, Username: "carol", AuthSource: "ldap"})
	if err != nil || ext.AppID != acme.ID {
		t.Fatalf("CreateExternalUser(acme) = %+v, %v", ext, err)
	}
	if _, err := s.UserByName(ctx, store.DefaultApp, "carol"); err == nil {
		t.Error("acme's carol is found in the default app")
	}
	res, err := s.ImportUsers(ctx, []store.User{
		{AppID: bare.ID, Username: "carol", PasswordHash: "h"},  // free in bare
		{AppID: acme.ID, Username: "Carol", AuthSource: "ldap"}, // acme's: existing
	})
	if err != nil || len(res) != 2 || res[0].Existing || res[0].User.AppID != bare.ID || !res[1].Existing || res[1].User.ID != ext.ID {
		t.Fatalf("ImportUsers across apps = %+v, %v", res, err)
	}

	nk := store.AppKeys{PushKeyID: "acme-push-2", PushSecret: "ps2", AdminKeyID: "acme-admin-2", AdminSecret: "as2"}
	if err := s.SetAppKeys(ctx, acme.ID, nk); err != nil {
		t.Fatal(err)
	}
	err = s.SetAppKeys(ctx, bare.ID, nk)
	wantErr(t, "SetAppKeys with another app's key id", err, store.ErrExists)
	wantErr(t, "SetAppKeys of no app", s.SetAppKeys(ctx, 999, store.AppKeys{}), store.ErrNotFound)
	if err := s.SetAppSettings(ctx, acme.ID, store.AppSettings{MaxGroupSize: 7}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SetAppSettings of no app", s.SetAppSettings(ctx, 999, store.AppSettings{}), store.ErrNotFound)
	apps, err = s.AppList(ctx)
	if err != nil || len(apps) != 3 {
		t.Fatalf("AppList = %+v, %v; want 3 apps", apps, err)
	}
	got := apps[1]
	if got.ID != acme.ID || got.Name != "acme" || got.Keys != nk || got.Settings.MaxGroupSize != 7 ||
		got.Settings.DevicePolicy != "" || got.Settings.RequireFriendship != nil || got.CreatedAt.IsZero() {
		t.Errorf("AppList[1] = %+v; want acme with the new keys and only max_group_size", got)
	}
}
