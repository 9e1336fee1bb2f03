package server

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
)

// memCursors is a CursorStore in memory, standing in for a device's disk.
type memCursors struct {
	mu sync.Mutex
	m  map[string]uint64
}

func (c *memCursors) Load() (map[string]uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	for k, v := range c.m {
		out[k] = v
	}
	return out, nil
}

func (c *memCursors) Save(id string, seq uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[id] = seq
	return nil
}

func deviceClient(t *testing.T, n *Node, user, device string, cur client.CursorStore) (*client.Client, *inbox) {
	t.Helper()
	box := &inbox{}
	c := client.New(client.Options{
		Server: "http://" + n.HTTPAddr(), Username: user, Password: "password-" + user, Device: device, Cursors: cur,
		OnMessage: func(m client.Message) { box.mu.Lock(); box.msgs = append(box.msgs, m); box.mu.Unlock() },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, box
}

// A backlog bigger than one frame still syncs: answers are cut by bytes,
// not only by message count.
func TestLargeBacklogSyncs(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	newClient(t, n, "bob", "b", "tcp", true)
	big := strings.Repeat("x", 4000)
	const count = 40 // ~160 KB: several frames
	for i := 0; i < count; i++ {
		if _, err := alice.SendText(context.Background(), "bob", fmt.Sprint(i, big)); err != nil {
			t.Fatal(err)
		}
	}
	_, box := deviceClient(t, n, "bob", "new-phone", nil)
	waitFor(t, "the whole backlog", func() bool { return len(box.texts()) == count })
	for i, txt := range box.texts() {
		if !strings.HasPrefix(txt, fmt.Sprint(i, "x")) {
			t.Fatalf("message %d out of order: %.10q", i, txt)
		}
	}
}

// A device offline while its user was removed from a group still gets the
// rest of its membership window, up to the removal event.
func TestSyncAfterRemovalFromGroup(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	ctx := context.Background()
	alice, _ := newClient(t, n, "alice", "a", "tcp", true)
	newClient(t, n, "bob", "b0", "tcp", true)
	cur := &memCursors{m: map[string]uint64{}}
	bob, box := deviceClient(t, n, "bob", "b1", cur)
	g, err := alice.CreateGroup(ctx, client.NewGroup{Name: "team", Members: []string{"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendGroup(ctx, g.ID, "before"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "first group message", func() bool { return strings.Contains(strings.Join(box.texts(), ","), "before") })
	_ = bob.Close()
	for _, txt := range []string{"while away 1", "while away 2"} {
		if _, err := alice.SendGroup(ctx, g.ID, txt); err != nil {
			t.Fatal(err)
		}
	}
	if err := alice.RemoveMember(ctx, g.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SendGroup(ctx, g.ID, "after removal"); err != nil {
		t.Fatal(err)
	}
	_, box2 := deviceClient(t, n, "bob", "b1", cur)
	waitFor(t, "the rest of the window", func() bool {
		got := strings.Join(box2.texts(), ",")
		return strings.Contains(got, "while away 1") && strings.Contains(got, "while away 2")
	})
	if got := strings.Join(box2.texts(), ","); strings.Contains(got, "after removal") {
		t.Fatalf("a message after the removal reached the removed member: %s", got)
	}
}
