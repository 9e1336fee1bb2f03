// Package oidctest is an OpenID Connect issuer for tests: an httptest
// server with the discovery document and a JWKS of keys made in the test,
// and a signer of ID tokens with them.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer serves /.well-known/openid-configuration and /keys.
type Issuer struct {
	URL     string // the issuer ("iss")
	JWKSURL string
	srv     *httptest.Server

	mu     sync.Mutex
	keys   []jose.JSONWebKey // private, newest last; the JWKS publishes their public halves
	down   bool
	Served atomic.Int64 // JWKS documents served
}

// Start runs an issuer with one RSA key until the test ends.
func Start(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if is.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, map[string]any{
			"issuer": is.URL, "jwks_uri": is.JWKSURL, "authorization_endpoint": is.URL + "/auth",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		if is.isDown() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		is.Served.Add(1)
		is.mu.Lock()
		var set jose.JSONWebKeySet
		for _, k := range is.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		is.mu.Unlock()
		writeJSON(w, set)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL, is.JWKSURL = is.srv.URL, is.srv.URL+"/keys"
	is.AddKey(t, jose.RS256)
	return is
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (is *Issuer) isDown() bool {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.down
}

// SetDown makes discovery and the JWKS answer 503 (or work again).
func (is *Issuer) SetDown(down bool) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.down = down
}

// NewKey makes a private key for alg (RS256 or ES256) with a random key id.
func NewKey(t testing.TB, alg jose.SignatureAlgorithm) jose.JSONWebKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	return jose.JSONWebKey{Key: priv, KeyID: hex.EncodeToString(id), Algorithm: string(alg), Use: "sig"}
}

// AddKey publishes a new key (a rotation) and signs with it from now on.
func (is *Issuer) AddKey(t testing.TB, alg jose.SignatureAlgorithm) {
	t.Helper()
	k := NewKey(t, alg)
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys = append(is.keys, k)
}

// Claims of an ID token: Token fills in iss, iat and exp (an hour) unless
// set.
type Claims map[string]any

// Token signs claims with the newest key.
func (is *Issuer) Token(t testing.TB, c Claims) string {
	t.Helper()
	is.mu.Lock()
	k := is.keys[len(is.keys)-1]
	is.mu.Unlock()
	if _, ok := c["iss"]; !ok {
		c["iss"] = is.URL
	}
	return Sign(t, k, c)
}

// Sign signs claims with key, filling in iat and exp if missing.
func Sign(t testing.TB, key jose.JSONWebKey, c Claims) string {
	t.Helper()
	now := time.Now()
	if _, ok := c["iat"]; !ok {
		c["iat"] = now.Unix()
	}
	if _, ok := c["exp"]; !ok {
		c["exp"] = now.Add(time.Hour).Unix()
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(key.Algorithm), Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
