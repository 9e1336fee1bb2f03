package chat

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/testserver"
	"github.com/magpie-im/magpie/proto/wire"
)

// The terminal prints live notices as they happen: a friend request with
// the command that answers it, the acceptance of mine, a join request for
// a group I run (issue 13: "a live notice of friend requests").
func TestLiveNoticesInTheTerminal(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob", "carol", "dave")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var aliceNotices []client.Notice
	sdk := func(name string, o client.Options) *client.Client {
		o.Server, o.Username, o.Password, o.Device = srv.URL, name, "pw-"+name, "sdk-"+name
		c := client.New(o)
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	alice := sdk("alice", client.Options{OnNotice: func(n client.Notice) { mu.Lock(); aliceNotices = append(aliceNotices, n); mu.Unlock() }})
	carol := sdk("carol", client.Options{})
	g, err := sdk("bob", client.Options{}).CreateGroup(ctx, client.NewGroup{Name: "team", JoinPolicy: client.JoinApproval})
	if err != nil {
		t.Fatal(err)
	}

	// bob's terminal: stdin stays open until the notices were printed.
	stdin, feed := io.Pipe()
	var out, errw syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--server", srv.URL, "--user", "bob", "--device", "cli-bob"}, stdin, &out, &errw)
	}()
	feed.Write([]byte("pw-bob\n"))
	testserver.WaitFor(t, "bob's terminal connected", func() bool { return strings.Contains(errw.String(), "* connected as bob") })

	if _, err := alice.RequestFriend(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, "the friend request line", func() bool { return strings.Contains(out.String(), "* alice wants") })
	if _, err := carol.JoinGroup(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, "the join request line", func() bool { return strings.Contains(out.String(), "asks to join") })
	feed.Write([]byte(":accept alice\n"))
	testserver.WaitFor(t, "alice's friend.accepted notice", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(aliceNotices) > 0
	})
	feed.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, errw.String())
	}
	wantLines(t, "bob", out.String(),
		`\* alice wants to be your friend: :accept alice`,
		`\* carol asks to join team \(`+g.ID+`\): :to `+g.ID+`, then :approve carol`,
		`friends with alice`,
	)
	mu.Lock()
	defer mu.Unlock()
	if n := aliceNotices[0]; len(aliceNotices) != 1 || n.Type != client.NoticeFriendAccepted || n.Actor != "bob" {
		t.Errorf("alice's notices %+v; want one friend.accepted from bob", aliceNotices)
	}
	refused := client.Notice{Type: client.NoticeScheduledRefused, ScheduledID: 4, ToGroup: "g_3", Reason: "not a member of the conversation", Code: wire.CodeNotMember}
	if got, want := noticeLine(refused), "* scheduled message 4 to g_3 was not sent: not a member of the conversation (not_member)"; got != want {
		t.Errorf("noticeLine(scheduled.refused) = %q, want %q", got, want)
	}
	// A type the terminal does not know prints nothing; the group ones are the events' lines.
	for _, n := range []client.Notice{{Type: "something.new", Actor: "x"}, {Type: client.NoticeGroupAdded, Actor: "x"}} {
		if line := noticeLine(n); line != "" {
			t.Errorf("noticeLine(%+v) = %q, want none", n, line)
		}
	}
}

// A scheduled message refused at its time: the live line while connected,
// and :scheduled lists it refused with the reason.
func TestRefusedScheduledInTheTerminal(t *testing.T) {
	t.Setenv("MAGPIE_PASSWORD", "")
	srv := testserver.Start(t, nil, "alice", "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bob := client.New(client.Options{Server: srv.URL, Username: "bob", Password: "pw-bob", Device: "sdk-bob"})
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	stdin, feed := io.Pipe()
	var out, errw syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--server", srv.URL, "--user", "alice", "--device", "cli-alice"}, stdin, &out, &errw)
	}()
	feed.Write([]byte("pw-alice\n:to bob\n:delay 1 see you\n"))
	testserver.WaitFor(t, "the scheduled line", func() bool { return strings.Contains(out.String(), "scheduled 1 for") })
	if err := bob.Block(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	testserver.WaitFor(t, "the refusal line", func() bool { return strings.Contains(out.String(), "was not sent") })
	feed.Write([]byte(":scheduled\n"))
	feed.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v\nstderr:\n%s", err, errw.String())
	}
	wantLines(t, "alice", out.String(),
		`\* scheduled message 1 to bob was not sent: .+ \(blocked\)`,
		`scheduled 1: .* to bob: see you \(refused: .+ \(blocked\); :cancel 1 drops it\)`,
	)
}
