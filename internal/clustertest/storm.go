package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The reconnect storm (scenario 8): Conns raw connections (sharing the
// tokens of Conns/40 users) on one gateway, which is killed with kill -9;
// each then re-authenticates on another gateway after a jittered delay,
// with jittered exponential backoff on failure, as the SDK does. The
// gateways run with --accept-rate; meanwhile the database's transactions
// per second are sampled, and the SDK devices of that gateway must catch
// up by sequence ranges.

// StormFigure is what the storm measured.
type StormFigure struct {
	Conns         int
	Reauthed      int
	P50, P99, All time.Duration // kill → re-authenticated
	Retries       int
	// PeakTPS and BaseTPS: the database's busiest quarter second during the
	// storm and before it, as transactions per second (pg_stat_database).
	PeakTPS, BaseTPS float64
	CaughtUp         time.Duration // kill → every SDK device caught up
}

func (f StormFigure) String() string {
	return fmt.Sprintf("%d connections: %d re-authenticated, p50 %v p99 %v all %v, %d retries; database peak %.0f transactions/s (before: %.0f/s); every device caught up %v after the kill",
		f.Conns, f.Reauthed, f.P50.Round(time.Millisecond), f.P99.Round(time.Millisecond), f.All.Round(time.Millisecond), f.Retries, f.PeakTPS, f.BaseTPS, f.CaughtUp.Round(time.Millisecond))
}

// tps samples the run database's commits + rollbacks every quarter second
// until stop, and returns the highest rate seen.
func (t *Topology) tps(ctx context.Context, stop <-chan struct{}) float64 {
	conn, err := pgx.Connect(ctx, t.cfg.Postgres)
	if err != nil {
		return -1
	}
	defer conn.Close(context.Background())
	read := func() (int64, time.Time, bool) {
		var n int64
		err := conn.QueryRow(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", t.dbName).Scan(&n)
		return n, time.Now(), err == nil
	}
	peak := 0.0
	last, at, ok := read()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for ok {
		select {
		case <-stop:
			return peak
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
		// The statistics collector is flushed by backends at most every
		// 10 ms and on idle: rates are per sample, good enough for a peak.
		n, now, good := read()
		if !good {
			continue // the server restarting, or our connection lost
		}
		peak = max(peak, float64(n-last)/now.Sub(at).Seconds())
		last, at = n, now
	}
	return peak
}

// Storm runs the reconnect storm against t.Gateways[victim].
func (t *Topology) Storm(ctx context.Context, load *Load, victim, conns int, jitter time.Duration) (*StormFigure, error) {
	users := max(1, conns/40)
	run := randHex(3)
	tokens := make([]string, users)
	if err := forEach(ctx, users, 8, func(i int) error {
		tok, err := login(ctx, t.LogicURLs()[i%len(t.Logic)], fmt.Sprintf("st%s_%d", run, i))
		tokens[i] = tok
		return err
	}); err != nil {
		return nil, fmt.Errorf("storm logins: %w", err)
	}
	gw := t.Gateways[victim]
	var others []*Node
	for i, n := range t.Gateways {
		if i != victim {
			others = append(others, n)
		}
	}
	rcs := make([]*rawConn, conns)
	if err := forEach(ctx, conns, 100, func(i int) error {
		c, err := dialAuth(ctx, gw.TCP, tokens[i%users])
		rcs[i] = c
		return err
	}); err != nil {
		return nil, fmt.Errorf("storm connect: %w", err)
	}
	defer func() {
		for _, c := range rcs {
			if c != nil {
				c.c.Close()
			}
		}
	}()
	f := &StormFigure{Conns: conns}
	stopBase := make(chan struct{})
	go func() { time.Sleep(2 * time.Second); close(stopBase) }()
	f.BaseTPS = t.tps(ctx, stopBase)

	stop := make(chan struct{})
	peak := make(chan float64, 1)
	go func() { peak <- t.tps(ctx, stop) }()
	var (
		mu      sync.Mutex
		back    []time.Duration
		retries atomic.Int64
		wg      sync.WaitGroup
	)
	kill := time.Now()
	for i, c := range rcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for { // until the connection dies, as a client's reader would
				if _, err := c.r.ReadFrame(); err != nil {
					break
				}
			}
			c.c.Close()
			delay := time.Duration(rand.Int64N(int64(jitter)))
			for attempt := 0; attempt < 40; attempt++ {
				if !sleepOK(ctx, delay) {
					return
				}
				nc, err := dialAuth(ctx, others[(i+attempt)%len(others)].TCP, tokens[i%users])
				if err == nil {
					mu.Lock()
					back = append(back, time.Since(kill))
					rcs[i] = nc
					mu.Unlock()
					return
				}
				retries.Add(1)
				delay = min(2*time.Second, 250*time.Millisecond<<min(attempt, 3)) + time.Duration(rand.Int64N(int64(250*time.Millisecond)))
			}
		}()
	}
	gw.Kill()
	since := time.Now()
	wg.Wait()
	took, ok := waitCaughtUp(ctx, load, since, 120*time.Second)
	f.CaughtUp = time.Since(kill)
	close(stop)
	f.PeakTPS = <-peak
	slices.Sort(back)
	f.Reauthed, f.Retries = len(back), int(retries.Load())
	if len(back) > 0 {
		f.P50, f.P99, f.All = back[len(back)/2], back[min(len(back)-1, len(back)*99/100)], back[len(back)-1]
	}
	load.Rec.Recovered("reconnect storm", took, ok)
	if err := t.Restart(ctx, gw); err != nil {
		return f, err
	}
	return f, t.WaitGateways(ctx, len(t.Gateways), 60*time.Second)
}
