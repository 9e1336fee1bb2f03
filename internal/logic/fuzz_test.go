package logic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzTokenVerify throws arbitrary tokens and clocks at the access token
// decoder: it must never panic, and what it accepts must carry a valid
// HMAC under the key, decode to the claims it returns, name a session and
// be unexpired. The payload of each input is also tried signed, so the
// decoding behind the signature check is fuzzed too.
func FuzzTokenVerify(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s := tokenSigner{key: key}
	other := tokenSigner{key: []byte("another-secret-of-32-bytes......")}
	now := int64(1_800_000_000)
	valid := s.sign(tokenClaims{Session: "s-0123456789abcdef", User: 42, Expires: now + 3600})
	p, sig, _ := strings.Cut(valid, ".")
	signed := func(payload string) string {
		p := base64.RawURLEncoding.EncodeToString([]byte(payload))
		return p + "." + s.mac(p)
	}
	for _, seed := range []struct {
		token string
		now   int64
	}{
		{valid, now},
		{valid, now + 3600}, // expired at that second
		{valid, -1 << 63},
		{p + "." + sig[:len(sig)-2] + "xx", now}, // tampered signature
		{p[:len(p)-2] + "xx." + sig, now},        // tampered payload
		{p + sig, now},                           // no dot
		{p + "." + sig + "." + sig, now},         // two dots
		{other.sign(tokenClaims{Session: "s-0123456789abcdef", User: 42, Expires: now + 3600}), now}, // another key
		{s.sign(tokenClaims{Session: "", User: 42, Expires: now + 3600}), now},                       // no session
		{s.sign(tokenClaims{Session: "s", User: -1, Expires: 1<<63 - 1}), now},
		{signed(`{"sid":"s","uid":1,"exp":1e400}`), now},
		{signed(`{"sid":7}`), now},
		{signed(`{"SID":"s","exp":1900000000}`), now},
		{signed("not json"), now},
		{"!!!." + s.mac("!!!"), now}, // signed, but not base64
		{valid + strings.Repeat("A", 1024), now},
		{"", now},
		{".", now},
	} {
		f.Add(seed.token, seed.now)
	}
	f.Fuzz(func(t *testing.T, token string, unix int64) {
		at := time.Unix(unix, 0)
		check := func(token string) {
			c, err := s.verify(token, at)
			if err != nil {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("verify(%q) = %v, want ErrUnauthenticated", token, err)
				}
				return
			}
			p, sig, _ := strings.Cut(token, ".")
			m := hmac.New(sha256.New, key)
			m.Write([]byte(p))
			if want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); sig != want || len(token) > 1024 {
				t.Fatalf("accepted %q, which the key did not sign", token)
			}
			payload, err := base64.RawURLEncoding.DecodeString(p)
			var want tokenClaims
			if err != nil || json.Unmarshal(payload, &want) != nil || c != want {
				t.Fatalf("accepted %q as %+v, but its payload is %q", token, c, payload)
			}
			if c.Session == "" || c.Expires <= unix {
				t.Fatalf("accepted %q at %d: %+v has no session or has expired", token, unix, c)
			}
			// The claims round-trip: signed again they verify as the same
			// claims (unless re-encoding made the token too long), and
			// only under this key.
			if again := s.sign(c); len(again) <= 1024 {
				if c2, err := s.verify(again, at); err != nil || c2 != c {
					t.Fatalf("claims %+v signed again: %+v, %v", c, c2, err)
				}
			}
			if _, err := other.verify(token, at); err == nil {
				t.Fatalf("%q verifies under another key", token)
			}
		}
		check(token)
		p, _, _ := strings.Cut(token, ".")
		check(p + "." + s.mac(p))
	})
}
