package clustertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/proto/wire"
)

// Multi-device churn (scenario 11): while the load runs, devices flap (the
// Client closes and a new one with the same device id and cursors comes
// back after a moment away, as an app killed and restarted does) and users
// leave and rejoin open groups the load sends to. The checker then holds
// every device to its user's membership windows, learnt from the group
// events the devices show (Load.onMessage → Recorder.Member).

// ChurnConfig sizes scenario 11.
type ChurnConfig struct {
	For      time.Duration // how long the churn lasts
	Groups   int           // open groups to churn; default 2
	Size     int           // members of each at the start, owner included; default 6; at most twice that join
	Flappers int           // devices flapping at once; default 4
	Churners int           // users leaving or joining at once; default 3
	Seed     int64         // draws who flaps and who churns
}

// ChurnFigure is what the churn did.
type ChurnFigure struct {
	Groups                 int
	Flaps, Joins, Leaves   int64
	FailedChanges          int64 // a join or leave that got an error (its outcome is learnt from the events)
	GroupSends, NotMembers int64 // sends to the churn groups; those refused as from a non-member
}

func (f *ChurnFigure) String() string {
	return fmt.Sprintf("%d groups; %d flaps, %d joins, %d leaves (%d changes answered with an error); %d sends to the churn groups, %d refused as from a non-member",
		f.Groups, f.Flaps, f.Joins, f.Leaves, f.FailedChanges, f.GroupSends, f.NotMembers)
}

// churnState is the load's belief of who is in each churn group: senders
// pick their groups from it. The truth is the server's; a send from a
// user who is no longer a member is refused (and counted as failed).
type churnState struct {
	mu      sync.Mutex
	members map[string][]string // group id → users believed to be members
	fig     ChurnFigure
	sends   atomic.Int64
	refused atomic.Int64
}

// churnGroupOf picks a churn group user is believed to be in (n spreads
// the choice), with its believed members, or "".
func (l *Load) churnGroupOf(user string, n int) (string, []string) {
	c := l.churn.Load()
	if c == nil {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var mine []string
	for g, ms := range c.members {
		if slices.Contains(ms, user) {
			mine = append(mine, g)
		}
	}
	if len(mine) == 0 {
		return "", nil
	}
	slices.Sort(mine)
	g := mine[n%len(mine)]
	return g, slices.Clone(c.members[g])
}

// Churn runs scenario 11 for cfg.For and returns its figures.
func (l *Load) Churn(ctx context.Context, cfg ChurnConfig) (*ChurnFigure, error) {
	if cfg.Groups == 0 {
		cfg.Groups = 2
	}
	if cfg.Size == 0 {
		cfg.Size = 6
	}
	if cfg.Flappers == 0 {
		cfg.Flappers = 4
	}
	if cfg.Churners == 0 {
		cfg.Churners = 3
	}
	cfg.Size = min(cfg.Size, len(l.users))
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), 11))
	st := &churnState{members: map[string][]string{}}
	pools := map[string][]string{} // group id → users who may join it
	// Groups of consecutive users from a random start; the first is the
	// owner, who stays (an owner cannot leave without handing over).
	for i := range cfg.Groups {
		start := rng.IntN(len(l.users))
		var members []string
		for k := range cfg.Size {
			members = append(members, l.users[(start+k)%len(l.users)])
		}
		owner := l.devs[slices.Index(l.users, members[0])*l.cfg.DevicesPerUser]
		g, err := owner.client().CreateGroup(ctx, client.NewGroup{Name: fmt.Sprintf("churn%d", i), Members: members[1:], JoinPolicy: client.JoinOpen})
		if err != nil {
			return nil, fmt.Errorf("create churn group: %w", err)
		}
		st.members[g.ID] = members
		// Who may join: the first members and as many users after them,
		// so a group stays small at any load (a group the whole load
		// joined multiplied the fan-out of the rest of the run).
		pool := slices.Clone(members)
		for k := cfg.Size; k < 2*cfg.Size && k < len(l.users); k++ {
			pool = append(pool, l.users[(start+k)%len(l.users)])
		}
		pools[g.ID] = pool
	}
	st.fig.Groups = cfg.Groups
	l.churn.Store(st)

	groups := make([]string, 0, len(st.members))
	for g := range st.members {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	cctx, cancel := context.WithTimeout(ctx, cfg.For)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards rng and the per-user and per-device locks below
	busyUser := map[string]bool{}
	// A device is flapped or used for a membership change, never both:
	// a change through a Client the flap closed still works over HTTP,
	// and once the flap's new Client has logged in (revoking the old
	// session) the closed one logs in again, which replaces the new
	// Client's session: kicked "replaced", it stops for good (the 11:31
	// CI run: u…_09-d1's sends all failed for 10 s, until the watchdog
	// replaced it).
	busyDev := map[*Device]bool{}
	for range cfg.Churners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				mu.Lock()
				g := groups[rng.IntN(len(groups))]
				st.mu.Lock()
				owner := st.members[g][0]
				st.mu.Unlock()
				pool := pools[g]
				u := pool[rng.IntN(len(pool))]
				pause := time.Duration(300+rng.IntN(1200)) * time.Millisecond
				d := l.devs[slices.Index(l.users, u)*l.cfg.DevicesPerUser+rng.IntN(l.cfg.DevicesPerUser)]
				// A Ready device: a Client still logging in would log in a
				// second time for the call.
				ok := u != owner && !busyUser[u] && !busyDev[d] && d.Ready()
				if ok {
					busyUser[u], busyDev[d] = true, true
				}
				mu.Unlock()
				if ok {
					l.toggleMember(cctx, st, g, u, d)
					mu.Lock()
					delete(busyUser, u)
					delete(busyDev, d)
					mu.Unlock()
				}
				sleepCtx(cctx, pause)
			}
		}()
	}
	for range cfg.Flappers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cctx.Err() == nil {
				mu.Lock()
				d := l.devs[rng.IntN(len(l.devs))]
				away := time.Duration(200+rng.IntN(2800)) * time.Millisecond
				ok := !busyDev[d]
				if ok {
					busyDev[d] = true
				}
				mu.Unlock()
				if ok {
					if d.flap(ctx, away) {
						st.mu.Lock()
						st.fig.Flaps++
						st.mu.Unlock()
					}
					mu.Lock()
					delete(busyDev, d)
					mu.Unlock()
				}
				sleepCtx(cctx, 200*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.fig
	f.GroupSends, f.NotMembers = st.sends.Load(), st.refused.Load()
	return &f, ctx.Err()
}

// toggleMember makes u leave g if it is believed a member, join it if
// not, through u's device d. The belief follows a change that
// succeeded; a failed one (an error, its outcome unknown) changes nothing,
// and the next try says what the server has: joining twice is no change,
// leaving a group one is not in is refused as not a member.
func (l *Load) toggleMember(ctx context.Context, st *churnState, g, u string, d *Device) {
	st.mu.Lock()
	in := slices.Contains(st.members[g], u)
	st.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if in {
		err = d.client().LeaveGroup(cctx, g)
	} else {
		_, err = d.client().JoinGroup(cctx, g)
	}
	var e *client.Error
	notMember := in && errors.As(err, &e) && e.Code == wire.CodeNotMember
	st.mu.Lock()
	defer st.mu.Unlock()
	switch {
	case err == nil && in:
		st.fig.Leaves++
	case err == nil:
		st.fig.Joins++
	default:
		st.fig.FailedChanges++
	}
	if err == nil || notMember {
		ms := slices.DeleteFunc(st.members[g], func(m string) bool { return m == u })
		if !in {
			ms = append(ms, u)
		}
		st.members[g] = ms
	}
}

// flap closes the device's Client and, after away, starts a new one with
// the same device id and cursors. It reports whether the device was up to
// be flapped (not closed, not being replaced by the watchdog).
func (d *Device) flap(ctx context.Context, away time.Duration) bool {
	d.mu.Lock()
	if d.closed || d.state != client.StateReady {
		d.mu.Unlock()
		return false
	}
	old := d.c
	d.state, d.since = client.StateConnecting, time.Now().Add(away) // not stuck while away
	d.mu.Unlock()
	old.Close()
	// As in replace: the old Client's cursor saves land before the new
	// one loads the cursors.
	sleepCtx(ctx, max(away, 300*time.Millisecond))
	d.mu.Lock()
	closed := d.closed
	d.since = time.Now()
	d.mu.Unlock()
	if !closed {
		// Back as the load's devices first came: login, connect, sync,
		// retried; one that never comes back is the watchdog's.
		_ = d.connect(ctx)
	}
	return true
}
