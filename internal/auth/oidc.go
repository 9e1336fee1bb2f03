package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// OIDCConfig is the OIDC / JWT source (--auth-oidc-*).
type OIDCConfig struct {
	Issuer   string // the "iss" every token must carry
	Audience string // a value "aud" must contain (the app's client id)
	// JWKSURL is where the signing keys are; "" discovers it from
	// Issuer/.well-known/openid-configuration at the first token.
	JWKSURL string

	UsernameClaim string // the Magpie username, default preferred_username
	NameClaim     string // default name
	EmailClaim    string // default email

	Timeout time.Duration // discovery and each key fetch, default 5s
	Client  *http.Client  // default: one with Timeout
}

// OIDCSource verifies ID tokens (or any JWT an app signs with a key in
// its JWKS): the signature with a key of the JWKS (fetched again when a
// token names a key it does not hold, so the issuer may rotate), then
// issuer, audience and expiry. Asymmetric algorithms only (RS*, PS*, ES*,
// EdDSA): a shared-secret HS256 token cannot be checked against a JWKS.
type OIDCSource struct {
	cfg OIDCConfig

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // nil until discovery succeeded
}

// signingAlgs are the algorithms a token may be signed with (go-oidc's
// verifier checks the header's against them; joseAlgs is the same list
// for the key set's parse).
var signingAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

var joseAlgs = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(signingAlgs))
	for i, a := range signingAlgs {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// NewOIDC validates cfg; with a JWKSURL it needs no network until the
// first token.
func NewOIDC(cfg OIDCConfig) (*OIDCSource, error) {
	if u, err := url.Parse(cfg.Issuer); cfg.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("--auth-oidc-issuer %q: want the issuer's http(s) URL", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("--auth-oidc-audience is required (the client id tokens are issued for)")
	}
	if cfg.JWKSURL != "" {
		if u, err := url.Parse(cfg.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("--auth-oidc-jwks-url %q: want an http(s) URL", cfg.JWKSURL)
		}
	}
	cfg.UsernameClaim = cmpOr(cfg.UsernameClaim, "preferred_username")
	cfg.NameClaim = cmpOr(cfg.NameClaim, "name")
	cfg.EmailClaim = cmpOr(cfg.EmailClaim, "email")
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	o := &OIDCSource{cfg: cfg}
	if cfg.JWKSURL != "" {
		o.verifier = o.newVerifier(cfg.JWKSURL)
	}
	return o, nil
}

func (o *OIDCSource) Name() string { return OIDC }

func (o *OIDCSource) newVerifier(jwksURL string) *oidc.IDTokenVerifier {
	return oidc.NewVerifier(o.cfg.Issuer, newKeySet(jwksURL, o.cfg.Client), &oidc.Config{ClientID: o.cfg.Audience, SupportedSigningAlgs: signingAlgs})
}

// verifierFor returns the verifier, discovering the JWKS URL first if
// needed (a failure is retried at the next token).
func (o *OIDCSource) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.cfg.Client), o.cfg.Timeout)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("auth: oidc: discovery at %s: %w", o.cfg.Issuer, err)
	}
	var meta struct {
		JWKSURL string `json:"jwks_uri"`
	}
	if err := p.Claims(&meta); err != nil || meta.JWKSURL == "" {
		return nil, fmt.Errorf("auth: oidc: %s's discovery document names no jwks_uri", o.cfg.Issuer)
	}
	o.verifier = o.newVerifier(meta.JWKSURL)
	return o.verifier, nil
}

// Token verifies a token and maps its claims. A token that does not
// verify is ErrRejected; keys that cannot be fetched are an error.
func (o *OIDCSource) Token(ctx context.Context, token string) (Profile, error) {
	v, err := o.verifierFor(ctx)
	if err != nil {
		return Profile{}, err
	}
	var fetch fetchFailure
	ctx, cancel := context.WithTimeout(context.WithValue(ctx, fetchFailureKey{}, &fetch), o.cfg.Timeout)
	defer cancel()
	tok, err := v.Verify(ctx, token)
	if err != nil {
		if fetch.err != nil {
			return Profile{}, fmt.Errorf("auth: oidc: fetching the JWKS: %w", fetch.err)
		}
		return Profile{}, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return Profile{}, fmt.Errorf("%w: claims: %v", ErrRejected, err)
	}
	str := func(name string) string { s, _ := claims[name].(string); return s }
	p := Profile{Username: str(o.cfg.UsernameClaim), DisplayName: str(o.cfg.NameClaim), Email: str(o.cfg.EmailClaim)}
	if p.Username == "" {
		return Profile{}, fmt.Errorf("%w: the token has no %q claim (--auth-oidc-username-claim)", ErrRejected, o.cfg.UsernameClaim)
	}
	return p, nil
}

// keySet is the issuer's JWKS, cached: a token whose key id is not in
// the cache makes it fetch the JWKS again (one fetch at a time; calls
// that missed meanwhile use its result). It is Magpie's own rather than
// go-oidc's RemoteKeySet for two reasons: go-oidc's verifier flattens a
// fetch that failed (fail closed: unavailable) and a token that does not
// verify (a refusal) into one error string, so this key set notes its
// fetch failures in the ctx of the Token call that saw them; and a
// rotation right after a fetch must not be answered by that older fetch.
type keySet struct {
	url    string
	client *http.Client
	sem    chan struct{} // one fetch at a time

	mu   sync.Mutex
	keys []jose.JSONWebKey
	gen  int // fetches so far
}

func newKeySet(url string, client *http.Client) *keySet {
	return &keySet{url: url, client: client, sem: make(chan struct{}, 1)}
}

type fetchFailureKey struct{}

type fetchFailure struct{ err error }

// maxJWKS bounds the JWKS document.
const maxJWKS = 1 << 20

func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	jws, err := jose.ParseSigned(jwt, joseAlgs)
	if err != nil {
		return nil, err
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	k.mu.Lock()
	keys, gen := k.keys, k.gen
	k.mu.Unlock()
	if p, ok := verifyWith(keys, jws, kid); ok {
		return p, nil
	}
	keys, err = k.fetch(ctx, gen)
	if err != nil {
		if f, ok := ctx.Value(fetchFailureKey{}).(*fetchFailure); ok {
			f.err = err
		}
		return nil, err
	}
	if p, ok := verifyWith(keys, jws, kid); ok {
		return p, nil
	}
	return nil, errors.New("no key of the issuer's JWKS verifies the token")
}

func verifyWith(keys []jose.JSONWebKey, jws *jose.JSONWebSignature, kid string) ([]byte, bool) {
	for _, key := range keys {
		if (kid == "" || key.KeyID == kid) && key.Use != "enc" {
			if p, err := jws.Verify(&key); err == nil {
				return p, true
			}
		}
	}
	return nil, false
}

// fetch reads the JWKS, unless another call fetched it since gen (then
// its keys are the answer).
func (k *keySet) fetch(ctx context.Context, gen int) ([]jose.JSONWebKey, error) {
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-k.sem }()
	k.mu.Lock()
	if k.gen != gen {
		defer k.mu.Unlock()
		return k.keys, nil
	}
	k.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, stripURL(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS))
	if err != nil {
		return nil, stripURL(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered status %d", redact(k.url), resp.StatusCode)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS: %v", redact(k.url), err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var key jose.JSONWebKey
		if err := json.Unmarshal(r, &key); err == nil && key.Valid() && key.IsPublic() {
			keys = append(keys, key) // keys of kinds go-jose does not know are skipped (RFC 7517, 5)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys, k.gen = keys, k.gen+1
	return keys, nil
}
