package logic

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// An MQTT persistent session catches up from its own position: the user's
// other device reading the messages (moving the user's cursors) does not
// take them from it; only its own acknowledgements move it. A clean start
// begins at the user's cursors, a clean session drops it.
func TestDeviceSessionPosition(t *testing.T) {
	s, _ := newTestService(t, nil)
	ctx := context.Background()
	alice := login(t, s, "alice", "", "").Identity
	phone := login(t, s, "bob", "phone", "")
	mq := login(t, s, "bob", "mq", "")
	send := func(text string) {
		t.Helper()
		if _, err := s.Send(ctx, alice, SendRequest{ToUser: "bob", Text: text}); err != nil {
			t.Fatal(err)
		}
	}
	var conns uint64
	connect := func(expiry uint32, clean bool) *clusterpb.ConnRef {
		t.Helper()
		conns++
		res, err := s.AuthenticateConn(ctx, mq.Token, &clusterpb.ConnRef{Gateway: "gw", Conn: conns, Exclusive: true, SessionExpiry: expiry, CleanStart: clean})
		if err != nil {
			t.Fatal(err)
		}
		return res.Conn
	}
	catchUp := func(c *clusterpb.ConnRef) []string {
		t.Helper()
		var got []string
		cursors := map[string]uint64{}
		for {
			res, err := s.DeviceSync(ctx, mq.Identity, c, cursors, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Conversations) != 0 {
				t.Fatalf("DeviceSync sent %d conversation states", len(res.Conversations))
			}
			for _, m := range res.Messages {
				got = append(got, m.Text)
				cursors[m.ConversationID] = m.Seq
			}
			if !res.More {
				return got
			}
		}
	}
	send("1")
	send("2")
	send("3")
	c := connect(3600, false)
	if c.SessionPresent || c.SessionExpiry != 3600 {
		t.Fatalf("first connect: %+v, want a new session", c)
	}
	if got := catchUp(c); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("first catch-up %v", got)
	}
	conv := store.PrivateConversationID(alice.UserID, mq.Identity.UserID)
	s.DeviceDelivered(c, conv, 1) // the device's PUBACK of 1
	s.flushDevices()

	// The phone reads everything, then more arrives.
	if _, err := s.MoveCursor(ctx, phone.Identity, conv, store.Read, 3, nil); err != nil {
		t.Fatal(err)
	}
	send("4")
	send("5")
	if res, _ := s.Sync(ctx, phone.Identity, map[string]uint64{conv: 3}, 0); len(res.Messages) != 2 {
		t.Fatalf("the phone's sync after its cursor: %d messages", len(res.Messages))
	}
	c = connect(3600, false)
	if !c.SessionPresent {
		t.Fatal("the session is not present on reconnect")
	}
	if got := catchUp(c); !slices.Equal(got, []string{"2", "3", "4", "5"}) {
		t.Fatalf("catch-up after the phone read: %v, want 2 3 4 5", got)
	}

	// A clean start: a new session at the user's delivered cursor (3).
	c = connect(3600, true)
	if c.SessionPresent {
		t.Fatal("a clean start resumed the session")
	}
	if got := catchUp(c); !slices.Equal(got, []string{"4", "5"}) {
		t.Fatalf("catch-up after a clean start: %v, want 4 5", got)
	}
	// A clean session (no expiry) ends it: the next persistent one is new.
	connect(0, true)
	if c = connect(3600, false); c.SessionPresent {
		t.Fatal("the session survived a clean session")
	}

	// Its expiry counts from the end of the connection that holds it: a
	// taken-over connection's end does not start it.
	uid := mq.Identity.UserID
	connect(3600, false) // takes the session over from c
	s.ConnEnded(c)
	s.flushDevices()
	if present, err := s.store.StartDeviceSession(ctx, uid, "mq", "probe", false, time.Now().Add(1000*time.Hour)); err != nil || !present {
		t.Fatalf("a held session after a taken-over connection's end: present %v, %v; want kept", present, err)
	}
	c = connect(3600, false)
	s.ConnEnded(c)
	s.flushDevices()
	if present, err := s.store.StartDeviceSession(ctx, uid, "mq", "probe/1", false, time.Now().Add(59*time.Minute)); err != nil || !present {
		t.Fatalf("59 minutes after the end of a session of 3600 s: present %v, %v", present, err)
	}
	s.ConnEnded(&clusterpb.ConnRef{Gateway: "probe", Conn: 1, UserId: uid, Device: "mq", SessionExpiry: 3600})
	s.flushDevices()
	if present, err := s.store.StartDeviceSession(ctx, uid, "mq", "probe2", false, time.Now().Add(2*time.Hour)); err != nil || present {
		t.Fatalf("2 hours after the end of a session of 3600 s: present %v, %v; want expired", present, err)
	}
}
