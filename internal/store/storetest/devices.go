package storetest

import (
	"maps"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// testDeviceSessions: an MQTT persistent session starts at the user's
// delivered cursors, then moves only by its own acknowledgements (never
// back), survives the user's other devices moving the user's cursors, and
// ends on a clean start, at expiry, or when dropped.
func testDeviceSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	ab, cb := store.PrivateConversationID(alice.ID, bob.ID), store.PrivateConversationID(carol.ID, bob.ID)
	sendN(t, s, alice, bob, "ab", 5)
	sendN(t, s, carol, bob, "cb", 3)
	if _, err := s.MoveCursor(ctx, bob.ID, ab, store.Delivered, 2); err != nil {
		t.Fatal(err)
	}
	cursors := func(device string, want map[string]uint64) {
		t.Helper()
		got, err := s.DeviceCursors(ctx, bob.ID, device)
		if err != nil || !maps.Equal(got, want) {
			t.Fatalf("DeviceCursors(%s) = %v, %v; want %v", device, got, err, want)
		}
	}
	start := func(device, conn string, clean bool, now time.Time, want bool) {
		t.Helper()
		present, err := s.StartDeviceSession(ctx, bob.ID, device, conn, clean, now)
		if err != nil || present != want {
			t.Fatalf("StartDeviceSession(%s, %s, clean %v) = %v, %v; want present %v", device, conn, clean, present, err, want)
		}
	}
	end := func(device, conn string, expires time.Time) {
		t.Helper()
		if err := s.EndDeviceSessions(ctx, []store.DeviceSessionEnd{{UserID: bob.ID, Device: device, Conn: conn, ExpiresAt: expires}}); err != nil {
			t.Fatal(err)
		}
	}
	cursors("dev1", map[string]uint64{})
	start("dev1", "gw/1", false, at(0), false)
	cursors("dev1", map[string]uint64{ab: 2}) // the user's delivered cursors; cb has none

	// The user's other device reads everything: the session stays.
	for _, c := range []string{ab, cb} {
		if _, err := s.MoveCursor(ctx, bob.ID, c, store.Read, 3); err != nil {
			t.Fatal(err)
		}
	}
	cursors("dev1", map[string]uint64{ab: 2})

	// Only the device's own moves count, never backwards; a device
	// without a session is not given one.
	err := s.MoveDeviceCursors(ctx, []store.DeviceCursorMove{
		{UserID: bob.ID, Device: "dev1", ConversationID: cb, Seq: 2},
		{UserID: bob.ID, Device: "dev1", ConversationID: ab, Seq: 4},
		{UserID: bob.ID, Device: "dev1", ConversationID: ab, Seq: 3},
		{UserID: bob.ID, Device: "other", ConversationID: ab, Seq: 5},
	})
	if err != nil {
		t.Fatalf("MoveDeviceCursors: %v", err)
	}
	cursors("dev1", map[string]uint64{ab: 4, cb: 2})
	cursors("other", map[string]uint64{})

	// Held by a connection, a session does not expire; a taken-over
	// connection's end does not start the expiry, the holder's does.
	start("dev1", "gw/2", false, at(0).Add(1000*time.Hour), true)
	end("dev1", "gw/1", at(0))
	start("dev1", "gw/3", false, at(0).Add(2000*time.Hour), true)
	end("dev1", "gw/3", at(0).Add(time.Hour))
	cursors("dev1", map[string]uint64{ab: 4, cb: 2})

	// The sweep takes only what expired.
	start("dev2", "gw/4", false, at(0), false)
	end("dev2", "gw/4", at(0).Add(30*time.Minute))
	if n, err := s.DropExpiredDeviceSessions(ctx, at(0).Add(45*time.Minute)); err != nil || n != 1 {
		t.Fatalf("DropExpiredDeviceSessions = %d, %v; want 1 (dev2)", n, err)
	}
	cursors("dev2", map[string]uint64{})
	cursors("dev1", map[string]uint64{ab: 4, cb: 2})

	// Resumed before its expiry; past it, a session is gone: a new one
	// starts at the user's cursors (now ab 3, cb 3).
	start("dev1", "gw/5", false, at(0).Add(59*time.Minute), true)
	end("dev1", "gw/5", at(0).Add(2*time.Hour))
	start("dev1", "gw/6", false, at(0).Add(3*time.Hour), false)
	cursors("dev1", map[string]uint64{ab: 3, cb: 3})

	// A clean start drops what was there.
	if err := s.MoveDeviceCursors(ctx, []store.DeviceCursorMove{{UserID: bob.ID, Device: "dev1", ConversationID: ab, Seq: 5}}); err != nil {
		t.Fatal(err)
	}
	cursors("dev1", map[string]uint64{ab: 5, cb: 3})
	start("dev1", "gw/7", true, at(0).Add(3*time.Hour), false)
	cursors("dev1", map[string]uint64{ab: 3, cb: 3})

	// Ended with the zero time it never expires; dropped, it is gone.
	end("dev1", "gw/7", time.Time{})
	start("dev1", "gw/8", false, at(0).Add(5000*time.Hour), true)
	if err := s.DropDeviceSession(ctx, bob.ID, "dev1"); err != nil {
		t.Fatal(err)
	}
	cursors("dev1", map[string]uint64{})
	start("dev1", "gw/9", false, at(0), false)
}
