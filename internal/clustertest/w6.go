package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// W6Config is the failover benchmark: Conns raw connections on the first
// gateway, which is killed; each connection then re-authenticates with its
// token on another live gateway after a jittered delay, the way a client
// that knows where to go does. A checked SDK load runs alongside and must
// lose no ACKed message.
type W6Config struct {
	Conns  int           // connections on the gateway that is killed; default 16000
	Users  int           // users whose tokens the connections share; default Conns/40
	Jitter time.Duration // reconnect delay uniform in [0, Jitter); default 1s
}

// W6Result is what W6 measured.
type W6Result struct {
	Conns              int
	ConnectRate        float64 // conn/s while setting up
	Detected           time.Duration
	P50, P90, P99, All time.Duration // kill → re-authenticated
	Retries, Failed    int
	Report             *Result // the checked load alongside
}

type rawConn struct {
	c net.Conn
	r *wire.Reader
}

func dialAuth(ctx context.Context, addr, token string) (*rawConn, error) {
	return dialAuthWith(ctx, net.Dialer{Timeout: 10 * time.Second}, addr, token)
}

func dialAuthWith(ctx context.Context, d net.Dialer, addr, token string) (*rawConn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{c: c, r: wire.NewReader(c, 256, wire.MaxFrame)}
	b, _ := proto.Marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: token}}})
	c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write(wire.AppendFrame(nil, b)); err != nil {
		c.Close()
		return nil, err
	}
	for {
		f, err := rc.r.ReadFrame()
		if err != nil {
			c.Close()
			return nil, err
		}
		var env magpiepb.Envelope
		if err := proto.Unmarshal(f, &env); err != nil {
			c.Close()
			return nil, err
		}
		switch b := env.Body.(type) {
		case *magpiepb.Envelope_AuthOk:
			c.SetDeadline(time.Time{})
			return rc, nil
		case *magpiepb.Envelope_Error:
			c.Close()
			return nil, fmt.Errorf("auth: %s", wire.Code(b.Error.GetCode()))
		case *magpiepb.Envelope_Kick:
			c.Close()
			return nil, fmt.Errorf("kick: %s", wire.Code(b.Kick.GetCode()))
		}
	}
}

// login returns a token for a (new) user, registering it first.
func login(ctx context.Context, base, user string) (string, error) {
	if err := postJSON(ctx, base+"/v1/users", map[string]string{"username": user, "password": password}, nil); err != nil {
		return "", err
	}
	var out struct {
		Token string `json:"token"`
	}
	err := postJSON(ctx, base+"/v1/login", map[string]string{"username": user, "password": password, "device": "w6"}, &out)
	return out.Token, err
}

// RunW6 runs W6 on a started topology with at least 2 gateways. The
// checked load (lc) runs during the kill.
func RunW6(ctx context.Context, t *Topology, cfg W6Config, lc LoadConfig) (*W6Result, error) {
	if cfg.Conns == 0 {
		cfg.Conns = 16000
	}
	if cfg.Users == 0 {
		cfg.Users = max(1, cfg.Conns/40)
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = time.Second
	}
	base := t.LogicURLs()[0]
	run := randHex(3)
	tokens := make([]string, cfg.Users)
	if err := forEach(ctx, cfg.Users, 8, func(i int) error {
		tok, err := login(ctx, t.LogicURLs()[i%len(t.Logic)], fmt.Sprintf("w6%s_%d", run, i))
		tokens[i] = tok
		return err
	}); err != nil {
		return nil, fmt.Errorf("w6 logins: %w", err)
	}
	victim, others := t.Gateways[0], t.Gateways[1:]
	t.logf("w6: %d users logged in; connecting %d to %s", cfg.Users, cfg.Conns, victim.Name)
	conns := make([]*rawConn, cfg.Conns)
	start := time.Now()
	if err := forEach(ctx, cfg.Conns, 200, func(i int) error {
		c, err := dialAuth(ctx, victim.TCP, tokens[i%cfg.Users])
		conns[i] = c
		return err
	}); err != nil {
		return nil, fmt.Errorf("w6 connect: %w", err)
	}
	res := &W6Result{Conns: cfg.Conns, ConnectRate: float64(cfg.Conns) / time.Since(start).Seconds()}
	t.logf("w6: %d connected at %.0f conn/s", cfg.Conns, res.ConnectRate)
	_ = base

	lc.Servers = t.LogicURLs()
	load, err := StartLoad(ctx, lc)
	if err != nil {
		return nil, err
	}
	defer load.Close()
	sleepCtx(ctx, 3*time.Second)

	var (
		mu      sync.Mutex
		back    = make([]time.Duration, 0, cfg.Conns)
		retries atomic.Int64
		failed  atomic.Int64
		seenEOF atomic.Int64
		wg      sync.WaitGroup
	)
	kill := time.Now()
	var firstEOF atomic.Int64
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Wait for the connection to die, as a client's reader would.
			for {
				if _, err := c.r.ReadFrame(); err != nil {
					break
				}
			}
			c.c.Close()
			if seenEOF.Add(1) == 1 {
				firstEOF.Store(int64(time.Since(kill)))
			}
			delay := time.Duration(rand.Int64N(int64(cfg.Jitter)))
			for attempt := 0; ; attempt++ {
				if !sleepOK(ctx, delay) {
					failed.Add(1)
					return
				}
				gw := others[(i+attempt)%len(others)]
				nc, err := dialAuth(ctx, gw.TCP, tokens[i%cfg.Users])
				if err == nil {
					took := time.Since(kill)
					mu.Lock()
					back = append(back, took)
					mu.Unlock()
					conns[i] = nc
					return
				}
				retries.Add(1)
				if attempt > 30 {
					failed.Add(1)
					return
				}
				delay = min(2*time.Second, 250*time.Millisecond<<min(attempt, 3)) + time.Duration(rand.Int64N(int64(250*time.Millisecond)))
			}
		}()
	}
	victim.Kill()
	wg.Wait()
	res.Detected = time.Duration(firstEOF.Load())
	slices.Sort(back)
	q := func(p float64) time.Duration {
		if len(back) == 0 {
			return 0
		}
		return back[min(len(back)-1, int(p*float64(cfg.Conns)))]
	}
	res.P50, res.P90, res.P99 = q(0.50), q(0.90), q(0.99)
	if len(back) > 0 {
		res.All = back[len(back)-1]
	}
	res.Retries, res.Failed = int(retries.Load()), int(failed.Load())
	if len(back) < cfg.Conns*99/100 {
		res.P99 = 0 // not reached
	}
	t.logf("w6: re-authenticated %d/%d: p50 %v p90 %v p99 %v all %v; retries %d failed %d",
		len(back), cfg.Conns, res.P50, res.P90, res.P99, res.All, res.Retries, res.Failed)

	// The checked load: heal and check.
	if err := t.Restart(ctx, victim); err != nil {
		return nil, err
	}
	sleepCtx(ctx, 3*time.Second)
	load.StopSending()
	if err := load.FinalSync(ctx, 120*time.Second); err != nil {
		t.logf("  final sync: %v", err)
	}
	if err := load.FreshDevices(ctx, 120*time.Second); err != nil {
		t.logf("  fresh devices: %v", err)
	}
	res.Report = &Result{Report: load.Rec.Check(), Groups: load.Groups(), Replaced: load.Replaced.Load()}
	for _, c := range conns {
		if c != nil {
			c.c.Close()
		}
	}
	return res, nil
}

func sleepOK(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// forEach runs f(0..n-1) on conc goroutines and returns the first error.
func forEach(ctx context.Context, n, conc int, f func(i int) error) error {
	var (
		next  atomic.Int64
		first error
		once  sync.Once
		wg    sync.WaitGroup
	)
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
