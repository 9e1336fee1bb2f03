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
// gateways run with --accept-rate; meanwhile the database's statements and
// transactions per second are sampled (dbPeak), and the SDK devices of that gateway must catch
// up by sequence ranges.

// StormFigure is what the storm measured.
type StormFigure struct {
	Conns         int
	Reauthed      int
	P50, P99, All time.Duration // kill → re-authenticated
	Retries       int
	// Peak and Base: the run database's busiest second during the storm
	// (from the kill until every device caught up) and in the 2 s before
	// the kill; see DBRates.
	Peak, Base DBRates
	CaughtUp   time.Duration // kill → every SDK device caught up
}

// DBRates are the run database's rates over one second.
type DBRates struct {
	// TPS: transactions per second (pg_stat_database's commits and
	// rollbacks).
	TPS float64
	// QPS: statements executed per second (pg_stat_statements' calls of
	// the run's database: every SELECT, INSERT, UPDATE, DELETE, each
	// execution of a prepared one counted; BEGIN, COMMIT and other
	// utility statements not). -1: not measured (the server has no
	// pg_stat_statements: a server the run did not start, or an
	// installation without the extension).
	QPS float64
	// Evicted: pg_stat_statements dropped entries while sampling
	// (pg_stat_statements_info.dealloc grew), so QPS may be low.
	Evicted bool
}

func (r DBRates) String() string {
	if r.QPS < 0 {
		return fmt.Sprintf("%.0f transactions/s (statements/s not measured: no pg_stat_statements)", r.TPS)
	}
	s := fmt.Sprintf("%.0f statements/s, %.0f transactions/s", r.QPS, r.TPS)
	if r.Evicted {
		s += " (pg_stat_statements evicted entries meanwhile: statements/s may be low)"
	}
	return s
}

func (f StormFigure) String() string {
	return fmt.Sprintf("%d connections: %d re-authenticated, p50 %v p99 %v all %v, %d retries; database's busiest second %s (before the kill: %s); every device caught up %v after the kill",
		f.Conns, f.Reauthed, f.P50.Round(time.Millisecond), f.P99.Round(time.Millisecond), f.All.Round(time.Millisecond), f.Retries, f.Peak, f.Base, f.CaughtUp.Round(time.Millisecond))
}

// dbSample is one reading of the run database's counters.
type dbSample struct {
	at                    time.Time
	xacts, calls, dealloc int64
}

// dbCounters reads the run database's counters through conn (a
// connection to the admin database).
func (t *Topology) dbCounters(ctx context.Context, conn *pgx.Conn) (dbSample, error) {
	var s dbSample
	var err error
	if t.statements {
		err = conn.QueryRow(ctx, `SELECT d.xact_commit + d.xact_rollback,
			(SELECT coalesce(sum(s.calls), 0)::bigint FROM pg_stat_statements s WHERE s.dbid = d.datid),
			(SELECT dealloc FROM pg_stat_statements_info)
			FROM pg_stat_database d WHERE d.datname = $1`, t.dbName).Scan(&s.xacts, &s.calls, &s.dealloc)
	} else {
		err = conn.QueryRow(ctx, "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", t.dbName).Scan(&s.xacts)
	}
	s.at = time.Now()
	return s, err
}

// dbPeak samples the run database's counters every quarter second until
// stop and returns its busiest second: for each sample, the rates since
// the latest sample at least a second before it. A second, not a quarter:
// PostgreSQL 15 backends flush their transaction counts to pg_stat_database
// at most once a second, so a quarter second can hold a whole second's
// commits (pg_stat_statements counts at once).
func (t *Topology) dbPeak(ctx context.Context, stop <-chan struct{}) DBRates {
	peak := DBRates{QPS: -1}
	conn, err := pgx.Connect(ctx, t.cfg.Postgres)
	if err != nil {
		return DBRates{TPS: -1, QPS: -1}
	}
	defer conn.Close(context.Background())
	read := func() (dbSample, bool) {
		s, err := t.dbCounters(ctx, conn)
		return s, err == nil
	}
	first, ok := read()
	if !ok {
		return DBRates{TPS: -1, QPS: -1}
	}
	if t.statements {
		peak.QPS = 0
	}
	window := []dbSample{first}
	last := first
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			peak.Evicted = t.statements && last.dealloc != first.dealloc
			return peak
		case <-ctx.Done():
			return peak
		case <-tick.C:
		}
		s, good := read()
		if !good {
			continue // the server restarting, or our connection lost
		}
		if s.xacts < last.xacts || s.calls < last.calls {
			window = window[:0] // counters reset (a restart): start over
		}
		last = s
		window = append(window, s)
		j := -1
		for i, w := range window {
			if s.at.Sub(w.at) >= time.Second {
				j = i
			}
		}
		if j < 0 {
			continue
		}
		from := window[j]
		window = window[j:]
		d := s.at.Sub(from.at).Seconds()
		peak.TPS = max(peak.TPS, float64(s.xacts-from.xacts)/d)
		if t.statements {
			peak.QPS = max(peak.QPS, float64(s.calls-from.calls)/d)
		}
	}
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
	f.Base = t.dbPeak(ctx, stopBase)

	stop := make(chan struct{})
	peak := make(chan DBRates, 1)
	go func() { peak <- t.dbPeak(ctx, stop) }()
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
	f.Peak = <-peak
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
