package push

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testKey    = "backend"
	testSecret = "0123456789abcdef-secret"
	testPath   = "/v1/push"
)

var testBody = []byte(`{"to_users":["bob"],"text":"hi","transient":true}`)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newVerifier(maxSeen int) (*Verifier, *clock) {
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	return NewVerifier(map[string][]byte{testKey: []byte(testSecret)}, maxSeen, c.now), c
}

// signed builds the headers of a correctly signed request.
func signed(ts int64, nonce string, body []byte) http.Header {
	h := http.Header{}
	tsText := strconv.FormatInt(ts, 10)
	h.Set(HeaderKey, testKey)
	h.Set(HeaderTimestamp, tsText)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderSignature, Sign([]byte(testSecret), "POST", testPath, tsText, nonce, body))
	return h
}

func TestVerify(t *testing.T) {
	now := int64(1_800_000_000)
	nonce := "nonce-0123456789abcdef"
	tampered := append([]byte{}, testBody...)
	tampered[len(tampered)-2] = 'E' // "transient":truE: one byte changed
	tests := []struct {
		name    string
		method  string
		path    string
		header  func() http.Header
		body    []byte
		wantErr error
	}{
		{"valid", "POST", testPath, func() http.Header { return signed(now, nonce, testBody) }, testBody, nil},
		{"timestamp +300 s", "POST", testPath, func() http.Header { return signed(now+300, nonce, testBody) }, testBody, nil},
		{"timestamp -300 s", "POST", testPath, func() http.Header { return signed(now-300, nonce, testBody) }, testBody, nil},
		{"timestamp +301 s", "POST", testPath, func() http.Header { return signed(now+301, nonce, testBody) }, testBody, ErrStale},
		{"timestamp -301 s", "POST", testPath, func() http.Header { return signed(now-301, nonce, testBody) }, testBody, ErrStale},
		{"body changed by one byte", "POST", testPath, func() http.Header { return signed(now, nonce, testBody) }, tampered, ErrBadSignature},
		{"other path", "POST", "/v1/pushx", func() http.Header { return signed(now, nonce, testBody) }, testBody, ErrBadSignature},
		{"other method", "PUT", testPath, func() http.Header { return signed(now, nonce, testBody) }, testBody, ErrBadSignature},
		{"wrong signature", "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Set(HeaderSignature, Sign([]byte("another-secret-0123456"), "POST", testPath, strconv.FormatInt(now, 10), nonce, testBody))
			return h
		}, testBody, ErrBadSignature},
		{"signature not hex", "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Set(HeaderSignature, "zz")
			return h
		}, testBody, ErrSignatureForm},
		{"signature in upper case", "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Set(HeaderSignature, strings.ToUpper(h.Get(HeaderSignature)))
			return h
		}, testBody, ErrSignatureForm},
		{"signature with a prefix", "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Set(HeaderSignature, "sha256="+h.Get(HeaderSignature))
			return h
		}, testBody, ErrSignatureForm},
		{"unknown key", "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Set(HeaderKey, "intruder")
			return h
		}, testBody, ErrUnknownKey},
		{"nonce too short", "POST", testPath, func() http.Header { return signed(now, "short", testBody) }, testBody, ErrBadNonce},
		{"nonce too long", "POST", testPath, func() http.Header { return signed(now, strings.Repeat("n", 65), testBody) }, testBody, ErrBadNonce},
		{"nonce with a space", "POST", testPath, func() http.Header { return signed(now, "0123456789 abcdef", testBody) }, testBody, ErrBadNonce},
		{"timestamp not a number", "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Set(HeaderTimestamp, "soon")
			return h
		}, testBody, ErrBadTimestamp},
		{"timestamp with a plus", "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Set(HeaderTimestamp, "+"+strconv.FormatInt(now, 10))
			return h
		}, testBody, ErrBadTimestamp},
		{"timestamp in milliseconds", "POST", testPath, func() http.Header { return signed(now*1000, nonce, testBody) }, testBody, ErrStale},
	}
	for _, name := range []string{HeaderKey, HeaderTimestamp, HeaderNonce, HeaderSignature} {
		tests = append(tests, struct {
			name    string
			method  string
			path    string
			header  func() http.Header
			body    []byte
			wantErr error
		}{"missing " + name, "POST", testPath, func() http.Header {
			h := signed(now, nonce, testBody)
			h.Del(name)
			return h
		}, testBody, ErrMissingHeader})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := newVerifier(0)
			key, err := v.Verify(tt.method, tt.path, tt.header(), tt.body)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err == nil && key != testKey {
				t.Fatalf("got key %q, want %q", key, testKey)
			}
			if tt.wantErr != nil && v.Seen() != 0 {
				t.Fatalf("a refused request consumed its nonce")
			}
		})
	}
}

func TestReplay(t *testing.T) {
	v, c := newVerifier(0)
	now := c.now().Unix()
	h := signed(now, "replay-0123456789", testBody)
	if _, err := v.Verify("POST", testPath, h, testBody); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify("POST", testPath, h, testBody); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay: got %v, want ErrReplay", err)
	}
	// Still refused at the edge of the window; once the timestamp is out
	// of the window the nonce is forgotten and the request is stale.
	c.add(300 * time.Second)
	if _, err := v.Verify("POST", testPath, h, testBody); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay at +300 s: got %v, want ErrReplay", err)
	}
	c.add(2 * time.Second)
	if _, err := v.Verify("POST", testPath, h, testBody); !errors.Is(err, ErrStale) {
		t.Fatalf("replay at +302 s: got %v, want ErrStale", err)
	}
	// A fresh request prunes the expired nonce.
	if _, err := v.Verify("POST", testPath, signed(c.now().Unix(), "fresh-0123456789ab", testBody), testBody); err != nil {
		t.Fatal(err)
	}
	if got := v.Seen(); got != 1 {
		t.Fatalf("remembered %d nonces, want 1 (the old one expired)", got)
	}
}

func TestNonceCacheBounded(t *testing.T) {
	v, c := newVerifier(3)
	now := c.now().Unix()
	for i := 0; i < 3; i++ {
		if _, err := v.Verify("POST", testPath, signed(now, fmt.Sprintf("nonce-%016d", i), testBody), testBody); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.Verify("POST", testPath, signed(now, "nonce-overflow-000", testBody), testBody); !errors.Is(err, ErrNonceCacheFull) {
		t.Fatalf("got %v, want ErrNonceCacheFull", err)
	}
	c.add(301 * time.Second)
	if _, err := v.Verify("POST", testPath, signed(c.now().Unix(), "nonce-later-00000", testBody), testBody); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// FuzzVerify throws arbitrary headers and bodies at the parser: it must
// never panic and never accept anything it did not sign.
func FuzzVerify(f *testing.F) {
	now := int64(1_800_000_000)
	h := signed(now, "nonce-0123456789abcdef", testBody)
	f.Add(testKey, h.Get(HeaderTimestamp), h.Get(HeaderNonce), h.Get(HeaderSignature), testBody)
	f.Add(testKey, "1800000000", "x", "", []byte{})
	f.Add("", "-1", strings.Repeat("n", 100), "00", []byte("{"))
	f.Add(testKey, "99999999999999999999", "nonce-0123456789abcdef", strings.Repeat("a", 64), testBody[:5])
	f.Fuzz(func(t *testing.T, key, ts, nonce, sig string, body []byte) {
		v, _ := newVerifier(16)
		hd := http.Header{}
		hd.Set(HeaderKey, key)
		hd.Set(HeaderTimestamp, ts)
		hd.Set(HeaderNonce, nonce)
		hd.Set(HeaderSignature, sig)
		_, err := v.Verify("POST", testPath, hd, body)
		if err == nil {
			want := Sign([]byte(testSecret), "POST", testPath, hd.Get(HeaderTimestamp), hd.Get(HeaderNonce), body)
			if !strings.EqualFold(hd.Get(HeaderSignature), want) || hd.Get(HeaderKey) != testKey {
				t.Fatalf("accepted an unsigned request: %v", hd)
			}
		}
	})
}
