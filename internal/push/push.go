// Package push authenticates the signed server push API (POST /v1/push,
// docs/api.md). A backend holding a key (id and secret) signs each request:
//
//	X-Magpie-Key:       the key id
//	X-Magpie-Timestamp: unix seconds, within Window of the server's clock
//	X-Magpie-Nonce:     16-64 printable ASCII characters, never reused
//	X-Magpie-Signature: lowercase hex(HMAC-SHA256(secret, canonical)), 64 digits
//
// The request has no query string (the HTTP API refuses one: the canonical
// string does not cover it, so it could be changed in flight).
//
//	canonical = METHOD "\n" PATH "\n" TIMESTAMP "\n" NONCE "\n" hex(SHA256(body))
//
// The signature is checked in constant time, and only a correctly signed
// request consumes its nonce, so nobody without the secret can burn a
// backend's nonces. Nonces are remembered until their timestamp leaves the
// window, in a cache of bounded size.
//
// A Verifier is safe for concurrent use.
package push

import (
	"container/heap"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Header names.
const (
	HeaderKey       = "X-Magpie-Key"
	HeaderTimestamp = "X-Magpie-Timestamp"
	HeaderNonce     = "X-Magpie-Nonce"
	HeaderSignature = "X-Magpie-Signature"
)

// Limits.
const (
	Window         = 300 * time.Second // largest clock difference accepted, either way
	MinNonce       = 16
	MaxNonce       = 64
	DefaultMaxSeen = 1 << 20 // nonces remembered at most (about 64 bytes each)
)

// Canonical is the string a request's signature covers.
func Canonical(method, path, timestamp, nonce string, body []byte) string {
	sum := sha256.Sum256(body)
	return method + "\n" + path + "\n" + timestamp + "\n" + nonce + "\n" + hex.EncodeToString(sum[:])
}

// Sign returns the hex signature of a request (what a backend computes).
func Sign(secret []byte, method, path, timestamp, nonce string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(Canonical(method, path, timestamp, nonce, body)))
	return hex.EncodeToString(mac.Sum(nil))
}

// Verifier checks signed requests against a set of keys.
type Verifier struct {
	keys    map[string][]byte
	lookup  func(keyID string) ([]byte, bool) // keys not in keys; nil: none
	now     func() time.Time
	maxSeen int

	mu   sync.Mutex // guards seen and heap
	seen map[[16]byte]struct{}
	heap expiries
}

// NewVerifier checks requests against keys (id → secret). maxSeen bounds
// the nonce cache (0: DefaultMaxSeen); now is the clock (nil: time.Now).
func NewVerifier(keys map[string][]byte, maxSeen int, now func() time.Time) *Verifier {
	if maxSeen <= 0 {
		maxSeen = DefaultMaxSeen
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{keys: keys, now: now, maxSeen: maxSeen, seen: map[[16]byte]struct{}{}}
}

// SetLookup makes the verifier ask lookup for a key id that is not one of
// its keys (the apps' keys, kept in the database). Call it before use.
func (v *Verifier) SetLookup(lookup func(keyID string) ([]byte, bool)) { v.lookup = lookup }

// Static reports whether keyID is one of the keys given to NewVerifier.
func (v *Verifier) Static(keyID string) bool {
	_, ok := v.keys[keyID]
	return ok
}

// Enabled reports whether any key is configured.
func (v *Verifier) Enabled() bool { return v != nil && len(v.keys) > 0 }

// Verify checks a request's signature headers against method, path and
// the complete body, and consumes its nonce. It returns the key id.
func (v *Verifier) Verify(method, path string, h http.Header, body []byte) (string, error) {
	keyID, tsText, nonce, sigHex := h.Get(HeaderKey), h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature)
	for _, p := range []struct{ name, value string }{
		{HeaderKey, keyID}, {HeaderTimestamp, tsText}, {HeaderNonce, nonce}, {HeaderSignature, sigHex},
	} {
		if p.value == "" {
			return "", fmt.Errorf("%w %s", ErrMissingHeader, p.name)
		}
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || ts < 0 || strconv.FormatInt(ts, 10) != tsText {
		return "", ErrBadTimestamp
	}
	now := v.now().Unix()
	if d := now - ts; d > int64(Window/time.Second) || d < -int64(Window/time.Second) {
		return "", fmt.Errorf("%w (±%ds; server time %d)", ErrStale, int64(Window/time.Second), now)
	}
	if !validNonce(nonce) {
		return "", ErrBadNonce
	}
	secret, ok := v.keys[keyID]
	if !ok && v.lookup != nil {
		secret, ok = v.lookup(keyID)
	}
	if !ok || len(secret) == 0 {
		return "", ErrUnknownKey
	}
	if !lowerHex(sigHex, 2*sha256.Size) {
		return "", ErrSignatureForm
	}
	got, _ := hex.DecodeString(sigHex)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(Canonical(method, path, tsText, nonce, body)))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "", ErrBadSignature
	}
	// Remember the nonce until its timestamp can no longer pass the
	// window check above.
	if err := v.remember(keyID, nonce, ts+int64(Window/time.Second), now); err != nil {
		return "", err
	}
	return keyID, nil
}

// lowerHex reports whether s is n lowercase hex digits, the one form
// documented: a signature in upper case or with a prefix is refused, not
// guessed at.
func lowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func validNonce(n string) bool {
	if len(n) < MinNonce || len(n) > MaxNonce {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < 0x21 || n[i] > 0x7e {
			return false
		}
	}
	return true
}

// remember records a nonce, failing if it was seen.
func (v *Verifier) remember(keyID, nonce string, expires, now int64) error {
	sum := sha256.Sum256([]byte(keyID + "\x00" + nonce))
	var k [16]byte
	copy(k[:], sum[:])
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.heap) > 0 && v.heap[0].at < now {
		e := heap.Pop(&v.heap).(expiry)
		delete(v.seen, e.key)
	}
	if _, dup := v.seen[k]; dup {
		return ErrReplay
	}
	if len(v.seen) >= v.maxSeen {
		return ErrNonceCacheFull
	}
	v.seen[k] = struct{}{}
	heap.Push(&v.heap, expiry{at: expires, key: k})
	return nil
}

// Seen is the number of nonces remembered.
func (v *Verifier) Seen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.seen)
}

type expiry struct {
	at  int64
	key [16]byte
}

// expiries is a min-heap by expiry time.
type expiries []expiry

func (h expiries) Len() int           { return len(h) }
func (h expiries) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiries) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiries) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiries) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
