package logic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"
)

// Access tokens are "payload.signature", both base64url: the payload names
// the session and its expiry, the signature is HMAC-SHA256 with the shared
// token secret. The session is still looked up on use, so logout (session
// revocation) takes effect at once.
type tokenClaims struct {
	Session string `json:"sid"`
	User    int64  `json:"uid"`
	Expires int64  `json:"exp"` // unix seconds
}

type tokenSigner struct{ key []byte }

func (s tokenSigner) sign(c tokenClaims) string {
	payload, _ := json.Marshal(c)
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + s.mac(p)
}

func (s tokenSigner) mac(p string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(p))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify checks signature and expiry; it does not consult the store.
func (s tokenSigner) verify(token string, now time.Time) (tokenClaims, error) {
	var c tokenClaims
	p, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 1024 || !hmac.Equal([]byte(sig), []byte(s.mac(p))) {
		return c, ErrUnauthenticated
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(payload, &c) != nil || c.Session == "" {
		return c, ErrUnauthenticated
	}
	if now.Unix() >= c.Expires {
		return c, ErrUnauthenticated
	}
	return c, nil
}
