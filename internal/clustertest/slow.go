package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/internal/checker"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// The slow consumer (scenario 7): one more connection of a load user that
// authenticates and then never reads, with a tiny receive buffer, while a
// burst of messages goes to that user. Its gateway must cut it at its send
// queue cap (slow_consumer) with bounded memory, the rest of the traffic
// must keep its latency (within 2× of the same burst without the slow
// connection), and the device, connecting again, must catch up.

// SlowFigure is what the slow consumer scenario measured.
type SlowFigure struct {
	Burst             int
	Cut               bool
	How               string          // how the cut showed: a kick's code, or the connection closing
	Base, WithSlow    checker.Latency // the other traffic's live latency during each burst
	RSSBefore, RSSMax int64           // of the slow connection's gateway
	CaughtUp          time.Duration   // reconnect → every message shown
	Missing           int             // messages the reconnected device never showed
}

func (f SlowFigure) String() string {
	return fmt.Sprintf("burst %d: cut %v (%s); other traffic live p50/p99 %v/%v without, %v/%v with the slow connection; its gateway's RSS %d → max %d MiB; caught up %v after reconnecting (missing %d)",
		f.Burst, f.Cut, f.How, f.Base.P50.Round(time.Millisecond), f.Base.P99.Round(time.Millisecond),
		f.WithSlow.P50.Round(time.Millisecond), f.WithSlow.P99.Round(time.Millisecond), f.RSSBefore>>20, f.RSSMax>>20, f.CaughtUp.Round(time.Millisecond), f.Missing)
}

// burstText is each burst message's text: 8 KiB, so that a burst outgrows
// what the kernel buffers for a connection that does not read (up to
// tcp_wmem's 4 MiB on the gateway's side) plus the gateway's send queue.
var burstText = strings.Repeat("b", 8<<10)

// burst sends n messages from d to user to, 16 at a time, ids prefix-k.
func (l *Load) burst(d *Device, to, prefix string, n int) {
	_ = forEach(context.Background(), n, 16, func(i int) error {
		d.send(client.SendRequest{ClientMsgID: fmt.Sprintf("%s-%d", prefix, i), ToUser: to, Text: burstText}, []string{d.user, to})
		return nil
	})
}

// SlowConsumer runs scenario 7 with a burst of n messages.
func (t *Topology) SlowConsumer(ctx context.Context, l *Load, n int) (*SlowFigure, error) {
	if len(l.users) < 2 {
		return nil, errors.New("slow consumer: needs 2 users")
	}
	target, sender := l.users[0], l.devs[l.cfg.DevicesPerUser] // user 1's first device
	f := &SlowFigure{Burst: n}
	prefix := "burst-" + randHex(3)
	skip := func(id string) bool { return strings.HasPrefix(id, prefix) }

	from := time.Now()
	l.burst(sender, target, prefix+"-a", n)
	f.Base = l.Rec.LiveLatency(from, time.Now(), skip)

	var login struct {
		Token   string `json:"token"`
		Gateway struct {
			TCP string `json:"tcp"`
		} `json:"gateway"`
	}
	if err := postJSON(ctx, l.cfg.Servers[0]+"/v1/login", map[string]string{"username": target, "password": password, "device": "slow"}, &login); err != nil {
		return nil, fmt.Errorf("slow consumer login: %w", err)
	}
	var gw *Node
	for _, g := range t.Gateways {
		if g.TCP == login.Gateway.TCP {
			gw = g
		}
	}
	if gw == nil {
		return nil, fmt.Errorf("slow consumer: login named gateway %q, not one of the run's", login.Gateway.TCP)
	}
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	slow, err := dialAuthWith(ctx, d, gw.TCP, login.Token)
	if err != nil {
		return nil, fmt.Errorf("slow consumer connect: %w", err)
	}
	defer slow.c.Close()
	f.RSSBefore = rss(gw.cmd.Process.Pid)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the gateway's memory while the queue fills
		defer wg.Done()
		for {
			f.RSSMax = max(f.RSSMax, rss(gw.cmd.Process.Pid))
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	from = time.Now()
	l.burst(sender, target, prefix+"-b", n)
	f.WithSlow = l.Rec.LiveLatency(from, time.Now(), skip)
	sleepCtx(ctx, time.Second)
	close(stop)
	wg.Wait()

	// Was it cut? Read what is left: a kick, or the end of the connection.
	_ = slow.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		b, err := slow.r.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				f.How = "still open 5s after the burst"
			} else {
				f.Cut, f.How = true, "connection closed: "+err.Error()
			}
			break
		}
		var env magpiepb.Envelope
		if proto.Unmarshal(b, &env) == nil && env.GetKick() != nil {
			f.Cut, f.How = true, "kick "+wire.Code(env.GetKick().GetCode()).String()
			break
		}
	}
	slow.c.Close()

	// The device comes back (a new Client, no cursors) and must show every
	// message of its user's conversations.
	want := l.Rec.AckedFor(target, time.Now())
	got := newShownIDs()
	// Its cursors outlive a failed attempt, as an app's saved ones do: at
	// load a catch-up from zero (thousands of 8 KiB messages, 7 to a
	// frame) can outlast one attempt, and the next goes on from there.
	cursors := newMemCursors()
	c := client.New(client.Options{Server: l.cfg.Servers[0], Username: target, Password: password, Device: "slow",
		Transport: "tcp", HTTPClient: l.hcs[0], Cursors: cursors,
		OnMessage: got.add})
	defer func() { c.Close() }()
	start := time.Now()
	// Like the load's devices, retry the first connect: at load a login
	// can take longer than one attempt's 30 s.
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = c.Connect(cctx)
		cancel()
		if err == nil {
			break
		}
		var e *client.Error
		if attempt == 4 || ctx.Err() != nil || (errors.As(err, &e) && e.Code.Action() == wire.GiveUp) {
			f.Missing, f.CaughtUp = len(want), time.Since(start)
			return f, fmt.Errorf("slow consumer reconnect: %w", err)
		}
		c.Close()
		c = client.New(client.Options{Server: l.cfg.Servers[(attempt+1)%len(l.cfg.Servers)], Username: target, Password: password, Device: "slow",
			Transport: "tcp", HTTPClient: l.hcs[(attempt+1)%len(l.hcs)], Cursors: cursors,
			OnMessage: got.add})
	}
	missing := func() int { return got.missing(want) }
	for deadline := time.Now().Add(60 * time.Second); missing() > 0 && time.Now().Before(deadline) && ctx.Err() == nil; {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = c.Sync(sctx) // what the connect's sync has not pulled yet
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	f.CaughtUp, f.Missing = time.Since(start), missing()
	return f, nil
}

// shownIDs is the messages a device showed, by the id the checker knows
// them by (harnessID): an MQTT device's sends are stored under a key of
// the gateway's, and counting those by the stored key left every one of
// them missing (the 11:31 CI run's "746 never shown": all MQTT sends).
type shownIDs struct {
	mu sync.Mutex
	m  map[string]bool
}

func newShownIDs() *shownIDs { return &shownIDs{m: map[string]bool{}} }

// add is a Client's OnMessage.
func (s *shownIDs) add(m client.Message) {
	s.mu.Lock()
	s.m[harnessID(m.ClientMsgID, m.Text)] = true
	s.mu.Unlock()
}

// missing counts the ids of want not shown.
func (s *shownIDs) missing(want map[string]bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range want {
		if !s.m[id] {
			n++
		}
	}
	return n
}
