package clustertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/client"
)

// W5Config is the cross-node latency benchmark: Pairs sender→receiver
// pairs, each user one SDK client pinned to a gateway, an open-loop
// schedule of Rate messages per second in total.
type W5Config struct {
	Pairs    int           // default 100
	Rate     float64       // messages per second in total; default 2000
	Warmup   time.Duration // default 5s
	Duration time.Duration // measured window; default 20s
}

// W5Result is one W5 run.
type W5Result struct {
	Label              string
	Sent, Acked, Shown int     // in the window
	AckRate            float64 // ACKs per second in the window
	AckP50, AckP99     time.Duration
	E2EP50, E2EP99     time.Duration
	Lost               int // ACKed in the window, never shown (after settling)
}

func (r W5Result) String() string {
	return fmt.Sprintf("%s: sent %d, acked %d (%.0f/s), shown %d, lost %d; ACK p50 %v p99 %v; send→shown p50 %v p99 %v",
		r.Label, r.Sent, r.Acked, r.AckRate, r.Shown, r.Lost, r.AckP50.Round(time.Microsecond), r.AckP99.Round(time.Microsecond),
		r.E2EP50.Round(time.Microsecond), r.E2EP99.Round(time.Microsecond))
}

// pinning is an http.RoundTripper that rewrites the gateway of every
// login answer to a chosen one, so a benchmark decides which gateway each
// user's connection lands on (the token is valid on any gateway).
type pinning struct {
	base http.RoundTripper
	gw   *Node
}

func (p pinning) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.base.RoundTrip(req)
	if err != nil || req.URL.Path != "/v1/login" || resp.StatusCode != http.StatusOK || p.gw == nil {
		return resp, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	m["gateway"] = map[string]string{"id": p.gw.ID, "tcp": p.gw.TCP, "ws": "ws://" + p.gw.HTTP + "/v1/ws"}
	data, _ = json.Marshal(m)
	resp.Body = io.NopCloser(bytes.NewReader(data))
	resp.ContentLength = int64(len(data))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// RunW5 runs one W5 measurement against server (a logic node or a
// `magpie serve`); senders are pinned to from and receivers to to (nil:
// wherever the login sends them).
func RunW5(ctx context.Context, label, server string, from, to *Node, cfg W5Config) (*W5Result, error) {
	if cfg.Pairs == 0 {
		cfg.Pairs = 100
	}
	if cfg.Rate == 0 {
		cfg.Rate = 2000
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 5 * time.Second
	}
	if cfg.Duration == 0 {
		cfg.Duration = 20 * time.Second
	}
	run := randHex(3)
	type pair struct{ s, r *client.Client }
	pairs := make([]pair, cfg.Pairs)
	var (
		mu    sync.Mutex
		e2e   []time.Duration
		acks  []time.Duration
		shown = map[string]bool{}
	)
	var winStart, winEnd time.Time // set before the first send
	inWindow := func(t time.Time) bool { return !t.Before(winStart) && t.Before(winEnd) }
	onMessage := func(m client.Message) {
		now := time.Now()
		f := strings.Fields(m.Text)
		if len(f) < 3 || f[0] != "w5" {
			return
		}
		ns, _ := strconv.ParseInt(f[2], 10, 64)
		intended := time.Unix(0, ns)
		if !inWindow(intended) {
			return
		}
		mu.Lock()
		e2e = append(e2e, now.Sub(intended))
		shown[f[1]] = true
		mu.Unlock()
	}
	mk := func(user string, gw *Node, recv bool) *client.Client {
		o := client.Options{Server: server, Username: user, Password: password, Transport: "tcp",
			HTTPClient: &http.Client{Transport: pinning{base: http.DefaultTransport, gw: gw}, Timeout: 30 * time.Second}}
		if recv {
			o.OnMessage = onMessage
		}
		return client.New(o)
	}
	if err := forEach(ctx, cfg.Pairs, 8, func(i int) error {
		s, r := fmt.Sprintf("w5%s_s%d", run, i), fmt.Sprintf("w5%s_r%d", run, i)
		for _, u := range []string{s, r} {
			if _, err := client.Register(ctx, server, u, password); err != nil {
				return err
			}
		}
		pairs[i] = pair{mk(s, from, false), mk(r, to, true)}
		if err := pairs[i].s.Connect(ctx); err != nil {
			return err
		}
		return pairs[i].r.Connect(ctx)
	}); err != nil {
		return nil, fmt.Errorf("w5 setup: %w", err)
	}
	defer func() {
		for _, p := range pairs {
			if p.s != nil {
				p.s.Close()
				p.r.Close()
			}
		}
	}()
	t0 := time.Now().Add(100 * time.Millisecond)
	winStart, winEnd = t0.Add(cfg.Warmup), t0.Add(cfg.Warmup+cfg.Duration)
	total := int((cfg.Warmup + cfg.Duration).Seconds() * cfg.Rate)
	var (
		wg      sync.WaitGroup
		sent    atomic.Int64
		ackedIn = map[string]bool{}
	)
	for k := 0; k < total && ctx.Err() == nil; k++ {
		intended := t0.Add(time.Duration(float64(k) / cfg.Rate * float64(time.Second)))
		if d := time.Until(intended); d > 0 {
			time.Sleep(d)
		}
		p := pairs[k%cfg.Pairs]
		id := fmt.Sprintf("%d", k)
		if inWindow(intended) {
			sent.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			_, err := p.s.Send(sctx, client.SendRequest{ToUser: p.r.Username(), Text: fmt.Sprintf("w5 %s %d", id, intended.UnixNano())})
			if err != nil || !inWindow(intended) {
				return
			}
			lat := time.Since(intended)
			mu.Lock()
			acks = append(acks, lat)
			ackedIn[id] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Settle: every ACKed message of the window must show up.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		missing := 0
		for id := range ackedIn {
			if !shown[id] {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	res := &W5Result{Label: label, Sent: int(sent.Load()), Acked: len(acks), Shown: len(e2e)}
	res.AckRate = float64(len(acks)) / cfg.Duration.Seconds()
	for id := range ackedIn {
		if !shown[id] {
			res.Lost++
		}
	}
	q := func(ds []time.Duration, p float64) time.Duration {
		if len(ds) == 0 {
			return 0
		}
		return ds[min(len(ds)-1, int(p*float64(len(ds))))]
	}
	slices.Sort(acks)
	slices.Sort(e2e)
	res.AckP50, res.AckP99 = q(acks, 0.5), q(acks, 0.99)
	res.E2EP50, res.E2EP99 = q(e2e, 0.5), q(e2e, 0.99)
	return res, nil
}

// StartSingle starts one `magpie serve` (embedded NATS) on the
// topology's database, for the single-node side of W5. Stop it with Kill.
func (t *Topology) StartSingle(ctx context.Context) (*Node, error) {
	addrs, err := t.ports.addrs(2)
	if err != nil {
		return nil, err
	}
	n := &Node{HTTP: addrs[0], TCP: addrs[1]}
	n.Proc = &Proc{Name: "serve", log: filepath.Join(t.cfg.Dir, "serve.log"), args: []string{
		t.cfg.Magpie, "serve", "--http", n.HTTP, "--tcp", n.TCP, "--data", filepath.Join(t.cfg.Dir, "serve"),
		"--store", t.DB, "--token-secret", t.secret, "--log-format", "json",
	}}
	if err := os.MkdirAll(t.cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := n.start(); err != nil {
		return nil, err
	}
	if err := waitHealthy(ctx, n, 60*time.Second); err != nil {
		n.Kill()
		return nil, err
	}
	return n, nil
}
