package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/logic"
)

// abuseReply is an HTTP answer with the headers the limits set.
type abuseReply struct {
	status     int
	retryAfter string // the Retry-After header
	code       string // error.code
	retryMs    int    // error.retry_after_ms
	msg        string
	body       map[string]any
}

// postFrom POSTs a JSON body to path; xff, if set, is sent as
// X-Forwarded-For (believed only from a trusted proxy).
func postFrom(t *testing.T, n *Node, path, xff, token string, body any) abuseReply {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out := abuseReply{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: map[string]any{}}
	_ = json.NewDecoder(resp.Body).Decode(&out.body)
	if e, ok := out.body["error"].(map[string]any); ok {
		out.code, _ = e["code"].(string)
		out.msg, _ = e["message"].(string)
		ms, _ := e["retry_after_ms"].(float64)
		out.retryMs = int(ms)
	}
	return out
}

// throttled checks that r is a 429 with both retry hints.
func (r abuseReply) throttled(t *testing.T, what string) {
	t.Helper()
	if r.status != http.StatusTooManyRequests || r.code != "rate_limited" || r.retryMs <= 0 {
		t.Fatalf("%s: %d %v, want 429 rate_limited with retry_after_ms", what, r.status, r.body)
	}
	if s, err := strconv.Atoi(r.retryAfter); err != nil || s < 1 {
		t.Fatalf("%s: Retry-After %q, want whole seconds ≥ 1", what, r.retryAfter)
	}
}

func login(t *testing.T, n *Node, xff, user, password string) abuseReply {
	t.Helper()
	return postFrom(t, n, "/v1/login", xff, "", map[string]string{"username": user, "password": password})
}

// abuseConfig is testConfig with the per-address limits applied to the
// loopback clients of the tests (by default loopback is exempt).
func abuseConfig(t *testing.T) config.Config {
	cfg := testConfig(t, t.TempDir())
	cfg.LimitExempt = nil
	return cfg
}

// A spray of wrong passwords over 200 usernames from one address is
// refused after the address's burst, before any more hashing.
func TestLoginSprayFromOneAddressIsThrottled(t *testing.T) {
	n := startNode(t, abuseConfig(t))
	before := n.svc.Stats().PasswordHashes
	limited := 0
	for i := range 200 {
		r := login(t, n, "", fmt.Sprintf("user%03d", i), "guess-123")
		switch r.status {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			r.throttled(t, "spray")
			limited++
		default:
			t.Fatalf("attempt %d: %d %v", i, r.status, r.body)
		}
	}
	if limited < 150 {
		t.Fatalf("%d of 200 spray attempts throttled, want all but the burst", limited)
	}
	if h := n.svc.Stats().PasswordHashes - before; h > 50 {
		t.Fatalf("%d hashes for a throttled spray, want at most the burst (refused before hashing)", h)
	}
	if got := n.svc.Stats().Limited[logic.LimitLoginAddr]; got != uint64(limited) {
		t.Fatalf("login_addr refusals counted %d, want %d", got, limited)
	}
}

// X-Forwarded-For names the client only when the peer is a trusted proxy;
// then each address has its own budget, and the right-most untrusted
// entry counts (a client cannot pick its address by prepending its own).
func TestLoginSprayThroughProxies(t *testing.T) {
	spray := func(n *Node, xff func(i int) string, tries int) (limited int) {
		for i := range tries {
			r := login(t, n, xff(i), fmt.Sprintf("user%03d", i), "guess-123")
			if r.status == http.StatusTooManyRequests {
				r.throttled(t, "spray")
				limited++
			} else if r.status != http.StatusUnauthorized {
				t.Fatalf("attempt %d: %d %v", i, r.status, r.body)
			}
		}
		return limited
	}
	const tries = 30 // the per-address burst is 20
	t.Run("trusted peer, many addresses", func(t *testing.T) {
		cfg := abuseConfig(t)
		cfg.TrustedProxies = mustPrefixes(t, "127.0.0.1")
		n := startNode(t, cfg)
		if l := spray(n, func(i int) string { return fmt.Sprintf("10.0.0.%d", i+1) }, tries); l != 0 {
			t.Fatalf("%d throttled, want none: each forwarded address has its own budget", l)
		}
		// The client wrote the left entry itself; the proxy appended the
		// real peer on the right, which is the one limited.
		if l := spray(n, func(i int) string { return fmt.Sprintf("192.0.2.%d, 10.9.9.9", i+1) }, tries); l == 0 {
			t.Fatal("a spoofed left-most X-Forwarded-For escaped the per-address limit")
		}
	})
	t.Run("untrusted peer", func(t *testing.T) {
		n := startNode(t, abuseConfig(t))
		if l := spray(n, func(i int) string { return fmt.Sprintf("10.0.0.%d", i+1) }, tries); l == 0 {
			t.Fatal("X-Forwarded-For from an untrusted peer was believed")
		}
	})
	t.Run("global", func(t *testing.T) {
		cfg := abuseConfig(t)
		cfg.TrustedProxies = mustPrefixes(t, "127.0.0.0/8")
		cfg.LoginGlobalRate = 1 // burst 10
		n := startNode(t, cfg)
		start := time.Now()
		l := spray(n, func(i int) string { return fmt.Sprintf("10.0.1.%d", i+1) }, tries)
		// The burst of 10, plus what 1/s refilled meanwhile.
		if allowed := 10 + int(time.Since(start).Seconds()) + 1; l < tries-allowed {
			t.Fatalf("%d of %d throttled, want all but %d (the global burst and its refill)", l, tries, allowed)
		}
	})
}

// Some proxies write X-Forwarded-For entries with a port. Such an entry
// names the client like any other: refused, it stopped the walk at the
// proxy, and a proxy on loopback is in the default --limit-exempt, so
// every client behind it escaped the per-address limits.
func TestForwardedAddressWithAPort(t *testing.T) {
	cfg := testConfig(t, t.TempDir()) // the default --limit-exempt (loopback)
	cfg.TrustedProxies = mustPrefixes(t, "127.0.0.1")
	n := startNode(t, cfg)
	for _, host := range []string{"203.0.113.7:%d", "[2001:db8::7]:%d"} {
		limited := 0
		for i := range 30 { // the per-address burst is 20
			r := login(t, n, fmt.Sprintf(host, 40000+i), fmt.Sprintf("user%03d", i), "guess-123")
			if r.status == http.StatusTooManyRequests {
				limited++
			} else if r.status != http.StatusUnauthorized {
				t.Fatalf("%s attempt %d: %d %v", host, i, r.status, r.body)
			}
		}
		if limited == 0 {
			t.Errorf("%s: 30 failed logins from one forwarded address, none throttled", host)
		}
	}
}

// A spray from one address cannot starve a real user's login from
// another: the spray is refused before hashing once over its budget, and
// the hashing slots stay free for others.
func TestRealLoginDuringSpray(t *testing.T) {
	cfg := abuseConfig(t)
	cfg.TrustedProxies = mustPrefixes(t, "127.0.0.1")
	cfg.HashConcurrency = 2
	n := startNode(t, cfg)
	if r := postFrom(t, n, "/v1/users", "10.0.0.2", "", map[string]string{"username": "alice", "password": "password-alice"}); r.status != 201 {
		t.Fatalf("register: %d %v", r.status, r.body)
	}
	before := n.svc.Stats().PasswordHashes
	var stop atomic.Bool
	var sprayed, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				r := login(t, n, "203.0.113.7", fmt.Sprintf("v%d-%d", w, i), "guess-123")
				sprayed.Add(1)
				if r.status == http.StatusTooManyRequests {
					refused.Add(1)
				}
			}
		}()
	}
	waitFor(t, "the spray to be throttled", func() bool { return refused.Load() > 100 })
	for i := range 3 {
		if r := login(t, n, "10.0.0.2", "alice", "password-alice"); r.status != 200 {
			t.Fatalf("real login %d during the spray: %d %v", i, r.status, r.body)
		}
	}
	stop.Store(true)
	wg.Wait()
	// 20 spray attempts (the burst, plus one a few seconds' refill) and
	// alice's 3 were hashed; the rest of the spray never reached Argon2.
	if h := n.svc.Stats().PasswordHashes - before; h > 30 {
		t.Fatalf("%d hashes for %d spray attempts, want about the burst of 20 + 3", h, sprayed.Load())
	}
}

// With every hashing slot busy, a login waits --hash-wait and then gets
// 503 with a retry hint instead of queueing forever.
func TestHashSlotsBoundedWait(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.HashConcurrency = 1
	cfg.HashWait = 10 * time.Millisecond
	cfg.LoginIPRate, cfg.LoginGlobalRate = 0, 0
	n := startNode(t, cfg)
	var wg sync.WaitGroup
	var busy atomic.Int64
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := login(t, n, "", fmt.Sprintf("nobody%d", i), "guess-123")
			if r.status == http.StatusServiceUnavailable && r.code == "unavailable" && r.retryMs > 0 && r.retryAfter != "" {
				busy.Add(1)
			} else if r.status != http.StatusUnauthorized {
				t.Errorf("login %d: %d %v", i, r.status, r.body)
			}
		}()
	}
	wg.Wait()
	if busy.Load() == 0 {
		t.Fatal("16 concurrent logins over 1 hashing slot with a 10ms wait: none was turned away")
	}
	if got := n.svc.Stats().Limited[logic.LimitHashBusy]; got != uint64(busy.Load()) {
		t.Fatalf("hash_busy refusals counted %d, want %d", got, busy.Load())
	}
}

// Registrations from one address are limited (burst 10).
func TestRegistrationFlood(t *testing.T) {
	n := startNode(t, abuseConfig(t))
	limited := 0
	for i := range 20 {
		r := postFrom(t, n, "/v1/users", "", "", map[string]string{"username": fmt.Sprintf("bot%02d", i), "password": "password123"})
		switch r.status {
		case http.StatusCreated:
		case http.StatusTooManyRequests:
			r.throttled(t, "registration flood")
			limited++
		default:
			t.Fatalf("register %d: %d %v", i, r.status, r.body)
		}
	}
	if limited < 8 {
		t.Fatalf("%d of 20 registrations throttled, want all but the burst of 10", limited)
	}
}

// A login for an unknown user and a wrong password for a known one do the
// same Argon2 work (nothing to learn from timing).
func TestWrongPasswordRunsTheHash(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	signup(t, n, "alice", true)
	for _, tt := range []struct{ name, user, password string }{
		{"unknown user", "nobody", "password-alice"},
		{"wrong password", "alice", "wrong-password"},
	} {
		before := n.svc.Stats().PasswordHashes
		r := login(t, n, "", tt.user, tt.password)
		if r.status != http.StatusUnauthorized || r.code != "invalid_credentials" {
			t.Fatalf("%s: %d %v", tt.name, r.status, r.body)
		}
		if h := n.svc.Stats().PasswordHashes - before; h != 1 {
			t.Errorf("%s: %d hashes, want 1", tt.name, h)
		}
	}
}

// Logging in again and again with new device names cannot pile up
// sessions: beyond --max-sessions-per-user the oldest are ended.
func TestDeviceFloodEndsOldestSessions(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxSessionsPerUser = 3
	n := startNode(t, cfg)
	signup(t, n, "alice", true)
	var tokens []string
	for i := range 8 { // the per-username login burst is 10
		r := postFrom(t, n, "/v1/login", "", "", map[string]string{"username": "alice", "password": "password-alice", "device": fmt.Sprint("dev", i)})
		if r.status != 200 {
			t.Fatalf("login %d: %d %v", i, r.status, r.body)
		}
		tokens = append(tokens, r.body["token"].(string))
	}
	valid := func(tok string) bool {
		req, _ := http.NewRequest("GET", "http://"+n.HTTPAddr()+"/v1/gateway", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	for i, tok := range tokens {
		if want := i >= len(tokens)-3; valid(tok) != want {
			t.Errorf("session of login %d valid=%v, want %v (the 3 newest stay)", i, !want, want)
		}
	}
}

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := config.Prefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
