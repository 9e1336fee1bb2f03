package server

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/config"
)

// liveBox records what one connected SDK client receives: messages as
// "sender: text", typing and receipts by conversation.
type liveBox struct {
	mu       sync.Mutex
	msgs     []string
	convs    map[string]bool // every conversation anything arrived in
	typing   int
	receipts int
}

func (b *liveBox) has(want string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Contains(b.msgs, want)
}

func (b *liveBox) snapshot() ([]string, map[string]bool, int, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	convs := map[string]bool{}
	for c := range b.convs {
		convs[c] = true
	}
	return slices.Clone(b.msgs), convs, b.typing, b.receipts
}

// liveUser connects app's user (registered with password "password-"+user)
// through server with the SDK.
func liveUser(t *testing.T, server, app, user string) (*client.Client, *liveBox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	box := &liveBox{convs: map[string]bool{}}
	c := client.New(client.Options{
		Server: server, App: app, Username: user, Password: "password-" + user, Device: "laptop",
		BackoffMin: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		OnMessage: func(m client.Message) {
			box.mu.Lock()
			box.msgs = append(box.msgs, m.Sender+": "+m.Text)
			box.convs[m.ConversationID] = true
			box.mu.Unlock()
		},
		OnTyping: func(ty client.Typing) {
			box.mu.Lock()
			box.typing++
			box.convs[ty.ConversationID] = true
			box.mu.Unlock()
		},
		OnReceipt: func(r client.Receipt) {
			box.mu.Lock()
			box.receipts++
			box.convs[r.ConversationID] = true
			box.mu.Unlock()
		},
	})
	if _, err := c.Register(ctx); err != nil {
		t.Fatalf("register %s/%s: %v", app, user, err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s/%s: %v", app, user, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, box
}

// Two apps with the same usernames (alice and bob in each), every user
// online on a live connection: what each app's users do — private
// messages, a group, typing, read receipts, a broadcast, the app's push
// to everyone and to a user — reaches its own users' connections only.
// After each app's last message arrived, no connection holds anything of
// the other app (no message, typing, receipt or conversation), and the
// online list names the caller's app's users only. On both stores; in a
// cluster by TestClusterAppsAreIsolated.
func TestAppsIsolatedLive(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testAppsIsolatedLive(t, "") })
	t.Run("postgres", func(t *testing.T) { testAppsIsolatedLive(t, postgresSchema(t)) })
}

func testAppsIsolatedLive(t *testing.T, dsn string) {
	cfg := testConfig(t, t.TempDir())
	cfg.Store = dsn
	cfg.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
	cfg.PushKeys = map[string][]byte{"ops": []byte("ops-push-secret-0123456789")}
	cfg.AllowBroadcast = true
	cfg.OnlineVisibility = "all"
	n := startNode(t, cfg)
	st, app := signedAdmin(t, n, "/v1/admin/apps", []byte(`{"name":"acme"}`), adminSecret)
	if st != 201 {
		t.Fatalf("create acme = %d %v", st, app)
	}
	base := "http://" + n.HTTPAddr()
	keys := map[string][2]string{
		"":     {"ops", "ops-push-secret-0123456789"},
		"acme": {app["push_key_id"].(string), app["push_secret"].(string)},
	}
	checkAppsLive(t, []string{base}, keys)
}

// TestClusterAppsAreIsolated is TestAppsIsolatedLive in a cluster: logic
// nodes and two gateways talking only through NATS (as `magpie logic` and
// `magpie gateway` processes do), the users logging in through different
// logic nodes, so the app of every request, delivery, broadcast and
// presence entry comes from the cluster's messages and the store (the
// gateways know only user ids). The app is made on one logic node and
// used at once on the other. SQLite: one logic node; PostgreSQL: two.
func TestClusterAppsAreIsolated(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testClusterApps(t, 1, "") })
	t.Run("postgres", func(t *testing.T) { testClusterApps(t, 2, postgresSchema(t)) })
}

func testClusterApps(t *testing.T, nLogic int, dsn string) {
	logics, _ := clusterWithConfig(t, nLogic, dsn, func(c *config.Config) {
		c.AdminKeys = map[string][]byte{"migrate": []byte(adminSecret)}
		c.PushKeys = map[string][]byte{"ops": []byte("ops-push-secret-0123456789")}
		c.AllowBroadcast = true
		c.OnlineVisibility = "all"
		c.Strategy = "round-robin"
	}, "gw-a", "gw-b")
	st, app := signedAdmin(t, logics[0], "/v1/admin/apps", []byte(`{"name":"acme"}`), adminSecret)
	if st != 201 {
		t.Fatalf("create acme = %d %v", st, app)
	}
	var bases []string
	for _, l := range logics {
		bases = append(bases, "http://"+l.HTTPAddr())
	}
	keys := map[string][2]string{
		"":     {"ops", "ops-push-secret-0123456789"},
		"acme": {app["push_key_id"].(string), app["push_secret"].(string)},
	}
	// Each logic node hands out the gateways in turn (round-robin), so
	// each app's alice and bob, logging in one after the other through
	// one logic node, are on different gateways.
	for app, gw := range checkAppsLive(t, bases, keys) {
		if gw[0] == gw[1] {
			t.Errorf("app %q: alice and bob are both on %s, want a gateway each", app, gw[0])
		}
	}
}

// checkAppsLive runs the live isolation check against the HTTP bases
// given (each app's users log in through one of them, in turn) with each
// app's push key; it returns the gateways of each app's alice and bob.
func checkAppsLive(t *testing.T, bases []string, pushKeys map[string][2]string) map[string][2]string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type user struct {
		c   *client.Client
		box *liveBox
	}
	apps := []string{"", "acme"}
	tag := map[string]string{"": "default", "acme": "acme"}
	users := map[string]map[string]user{}
	gws := map[string][2]string{}
	for i, a := range apps {
		users[a] = map[string]user{}
		for _, name := range []string{"alice", "bob"} {
			c, box := liveUser(t, bases[i%len(bases)], a, name)
			users[a][name] = user{c, box}
		}
		gws[a] = [2]string{users[a]["alice"].c.Gateway(), users[a]["bob"].c.Gateway()}
	}
	for _, a := range apps {
		alice := users[a]["alice"]
		waitFor(t, tag[a]+" bob online for alice", func() bool {
			on, err := alice.c.Online(ctx)
			if err != nil {
				return false
			}
			var names []string
			for _, u := range on {
				names = append(names, u.Username)
			}
			slices.Sort(names)
			return slices.Equal(names, []string{"alice", "bob"})
		})
	}

	// Everything each app's users do, the default app first.
	for _, a := range apps {
		alice, bob := users[a]["alice"], users[a]["bob"]
		ack, err := alice.c.SendText(ctx, "bob", tag[a]+" private")
		if err != nil {
			t.Fatalf("%s alice sends: %v", tag[a], err)
		}
		if err := alice.c.Typing(ctx, ack.ConversationID, false); err != nil {
			t.Fatalf("%s alice types: %v", tag[a], err)
		}
		waitFor(t, tag[a]+" bob gets alice's message", func() bool { return bob.box.has("alice: " + tag[a] + " private") })
		if err := bob.c.MarkRead(ctx, ack.ConversationID, ack.Seq); err != nil {
			t.Fatalf("%s bob reads: %v", tag[a], err)
		}
		g, err := bob.c.CreateGroup(ctx, client.NewGroup{Name: tag[a] + " team", Members: []string{"alice"}})
		if err != nil {
			t.Fatalf("%s bob creates a group: %v", tag[a], err)
		}
		if _, err := bob.c.SendGroup(ctx, g.ID, tag[a]+" group"); err != nil {
			t.Fatalf("%s bob sends to the group: %v", tag[a], err)
		}
		if _, err := alice.c.Send(ctx, client.SendRequest{Broadcast: true, Text: tag[a] + " broadcast"}); err != nil {
			t.Fatalf("%s alice broadcasts: %v", tag[a], err)
		}
		k := pushKeys[a]
		if st, m := signedPush(t, bases[0], k[0], k[1], `{"everyone":true,"text":"`+tag[a]+` push all","transient":true}`); st != 200 {
			t.Fatalf("%s push to everyone = %d %v", tag[a], st, m)
		}
		if st, m := signedPush(t, bases[len(bases)-1], k[0], k[1], `{"from":"alice","to_users":["bob"],"text":"`+tag[a]+` push bob"}`); st != 200 {
			t.Fatalf("%s push to bob = %d %v", tag[a], st, m)
		}
		if _, err := bob.c.SendText(ctx, "alice", tag[a]+" last"); err != nil {
			t.Fatalf("%s bob's last: %v", tag[a], err)
		}
	}
	for _, a := range apps {
		alice, bob := users[a]["alice"], users[a]["bob"]
		for _, want := range []string{"bob: " + tag[a] + " group", ": " + tag[a] + " push all", "bob: " + tag[a] + " last"} {
			waitFor(t, tag[a]+" alice gets "+want, func() bool {
				msgs, _, _, _ := alice.box.snapshot()
				return slices.ContainsFunc(msgs, func(m string) bool { return strings.HasSuffix(m, want) })
			})
		}
		for _, want := range []string{": " + tag[a] + " push bob", ": " + tag[a] + " push all", "alice: " + tag[a] + " broadcast"} {
			waitFor(t, tag[a]+" bob gets "+want, func() bool {
				msgs, _, _, _ := bob.box.snapshot()
				return slices.ContainsFunc(msgs, func(m string) bool { return strings.HasSuffix(m, want) })
			})
		}
		waitFor(t, tag[a]+" bob sees alice typing", func() bool { _, _, ty, _ := bob.box.snapshot(); return ty > 0 })
		waitFor(t, tag[a]+" alice gets bob's receipt", func() bool { _, _, _, r := alice.box.snapshot(); return r > 0 })
	}

	// Nothing of the other app anywhere.
	mine := map[string]map[string]bool{} // app → conversations its users saw
	for _, a := range apps {
		mine[a] = map[string]bool{}
		for _, name := range []string{"alice", "bob"} {
			_, convs, _, _ := users[a][name].box.snapshot()
			for c := range convs {
				if c != "" { // transient messages have none
					mine[a][c] = true
				}
			}
		}
	}
	for _, a := range apps {
		other := tag[apps[0]]
		if a == apps[0] {
			other = tag[apps[1]]
		}
		for _, name := range []string{"alice", "bob"} {
			msgs, convs, _, _ := users[a][name].box.snapshot()
			for _, m := range msgs {
				if strings.Contains(m, other+" ") {
					t.Errorf("%s %s got the other app's %q", tag[a], name, m)
				}
			}
			for c := range convs {
				if c == "" {
					continue
				}
				for _, b := range apps {
					if b != a && mine[b][c] {
						t.Errorf("%s %s got something of conversation %s, which is the other app's", tag[a], name, c)
					}
				}
			}
		}
	}
	return gws
}
