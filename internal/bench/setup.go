package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/magpie-im/magpie/client"
	"github.com/magpie-im/magpie/proto/wire"
)

// benchPassword is every bench user's password.
const benchPassword = "bench-password"

// login is the part of POST /v1/login's answer the bench uses.
type login struct {
	Token   string `json:"token"`
	UserID  int64  `json:"user_id"`
	Gateway struct {
		TCP  string `json:"tcp"`
		WS   string `json:"ws"`
		MQTT string `json:"mqtt"` // with --mqtt (W8)
	} `json:"gateway"`
}

// registerUsers creates the named users with conc requests at a time
// (Argon2id hashing makes each take tens of milliseconds on the server).
// A name that already exists is an error: prefixes are random per run.
func registerUsers(ctx context.Context, c *common, names []string, conc int) error {
	hc := c.httpClient(30*time.Second, conc)
	defer hc.CloseIdleConnections()
	return forEach(ctx, len(names), conc, func(ctx context.Context, i int) error {
		return retryRateLimited(ctx, func() error {
			cl := client.New(client.Options{Server: c.Server, Username: names[i], Password: benchPassword, HTTPClient: hc})
			defer cl.Close()
			_, err := cl.Register(ctx)
			return err
		})
	})
}

// registerAndLogin registers n users named <prefix>_<tag>_<i> and logs
// them in as device tag, 4 at a time; tag ("w1") also prefixes the log
// line and the errors.
func registerAndLogin(ctx context.Context, c *common, hc *http.Client, tag string, n int) ([]string, []login, error) {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s_%s_%d", c.UsersPrefix, tag, i)
	}
	c.logf("%s: registering and logging in %d users", tag, n)
	if err := registerUsers(ctx, c, names, 4); err != nil {
		return nil, nil, fmt.Errorf("bench %s: register: %w", tag, err)
	}
	logins, err := loginUsers(ctx, hc, c.Server, names, tag, 4)
	if err != nil {
		return nil, nil, fmt.Errorf("bench %s: login: %w", tag, err)
	}
	return names, logins, nil
}

// loginUsers logs the named users in as device, conc at a time.
func loginUsers(ctx context.Context, hc *http.Client, server string, names []string, device string, conc int) ([]login, error) {
	logins := make([]login, len(names))
	err := forEach(ctx, len(names), conc, func(ctx context.Context, i int) error {
		var err error
		logins[i], err = loginUser(ctx, hc, server, names[i], device)
		return err
	})
	return logins, err
}

// readTokens reads a --tokens file into v. found is false when the file
// cannot be read (it is then written after logging in); err is the
// decoding's.
func readTokens(path string, v any) (found bool, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return false, nil
	}
	return true, json.Unmarshal(data, v)
}

// writeTokens keeps v in a --tokens file for later runs.
func writeTokens(path string, v any) error {
	data, _ := json.Marshal(v)
	return os.WriteFile(path, data, 0o600)
}

// openRawConns dials and authenticates n raw connections, conc at a time:
// connection i logs in as logins[i%len(logins)] from sourceFor(c, i).
// prepare, if not nil, runs between the dial and the authentication. A
// connection that fails is closed, reported to fail with its stage ("dial"
// or "auth") and skipped; opened gets each authenticated one with the
// server's heartbeat and the time from dial to auth_ok. The error is the
// context's only.
func openRawConns(ctx context.Context, c *common, logins []login, n, conc int,
	prepare func(*rawConn), fail func(stage string, err error), opened func(i int, rc *rawConn, hb, took time.Duration)) error {
	return forEach(ctx, n, conc, func(ctx context.Context, i int) error {
		lg := logins[i%len(logins)]
		src := sourceFor(c, i)
		t0 := time.Now()
		rc, err := dialRaw(ctx, c.Transport, lg, src, c.TLS)
		if err != nil {
			fail("dial", err)
			return nil
		}
		if prepare != nil {
			prepare(rc)
		}
		hb, err := rc.authenticate(lg.Token)
		if err != nil {
			rc.close()
			fail("auth", err)
			return nil
		}
		opened(i, rc, hb, time.Since(t0))
		return nil
	})
}

// smokeDefault gives *p the --smoke profile's value v unless the flag name
// was given on the command line.
func smokeDefault[T any](c *common, name string, p *T, v T) {
	if !c.set[name] {
		*p = v
	}
}

// parseRates parses a comma-separated list of positive rates (empty
// entries are skipped); flagErr ("bench w2: --rates") prefixes the error.
func parseRates(list, flagErr string) ([]float64, error) {
	var rates []float64
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r <= 0 {
			return nil, fmt.Errorf("%s: bad rate %q", flagErr, s)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

// appendErrorCounts appends "N× msg" for each message counted to errs and
// sorts the lot.
func appendErrorCounts(errs []string, counts map[string]int) []string {
	for msg, n := range counts {
		errs = append(errs, fmt.Sprintf("%d× %s", n, msg))
	}
	sort.Strings(errs)
	return errs
}

// waitUntil waits for wg, or until deadline if that comes first.
func waitUntil(wg *sync.WaitGroup, deadline time.Time) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Until(deadline)):
	}
}

// loginUser logs name in as device over HTTP.
func loginUser(ctx context.Context, hc *http.Client, server, name, device string) (login, error) {
	var out login
	body, _ := json.Marshal(map[string]string{"username": name, "password": benchPassword, "device": device, "platform": "bench"})
	err := retryRateLimited(ctx, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(server, "/")+"/v1/login", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			return errRateLimited // 503: busy hashing passwords, retry
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("login %s: HTTP %d: %s", name, resp.StatusCode, bytes.TrimSpace(data))
		}
		return json.Unmarshal(data, &out)
	})
	return out, err
}

var errRateLimited = errors.New("rate limited")

// retryRateLimited repeats f while the server says rate_limited or
// unavailable (busy hashing passwords: a loaded machine registering
// many users at once gets it, and it says to retry).
func retryRateLimited(ctx context.Context, f func() error) error {
	for {
		err := f()
		var ce *client.Error
		limited := errors.Is(err, errRateLimited) || errors.As(err, &ce) &&
			(ce.Status == http.StatusTooManyRequests || ce.Code == wire.CodeUnavailable)
		if !limited {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// forEach runs f(0..n-1) with conc goroutines and returns the first error.
func forEach(ctx context.Context, n, conc int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, min(conc, n)) {
		wg.Go(func() {
			for i := range next {
				if err := f(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}
