package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/auth/oidctest"
)

const audience = "magpie-app"

func newOIDC(t *testing.T, c auth.OIDCConfig) *auth.OIDCSource {
	t.Helper()
	o, err := auth.NewOIDC(c)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func claims(user string) oidctest.Claims {
	return oidctest.Claims{"sub": "id-" + user, "aud": audience, "preferred_username": user, "name": "Name of " + user, "email": user + "@example.org"}
}

// A token of the issuer verifies, found through discovery or a given JWKS
// URL, RSA and EC; its claims map to the profile.
func TestOIDCToken(t *testing.T) {
	is := oidctest.Start(t)
	ctx := context.Background()
	for name, c := range map[string]auth.OIDCConfig{
		"discovery": {Issuer: is.URL, Audience: audience},
		"jwks url":  {Issuer: is.URL, Audience: audience, JWKSURL: is.JWKSURL},
	} {
		t.Run(name, func(t *testing.T) {
			o := newOIDC(t, c)
			p, err := o.Token(ctx, is.Token(t, claims("ivan")))
			if err != nil || p != (auth.Profile{Username: "ivan", DisplayName: "Name of ivan", Email: "ivan@example.org"}) {
				t.Errorf("token: %+v, %v", p, err)
			}
		})
	}
	// The issuer rotates to an EC key: a token with the new key id makes
	// the source fetch the JWKS again.
	o := newOIDC(t, auth.OIDCConfig{Issuer: is.URL, Audience: audience, JWKSURL: is.JWKSURL, UsernameClaim: "sub", NameClaim: "nickname"})
	if _, err := o.Token(ctx, is.Token(t, claims("ivan"))); err != nil {
		t.Fatal(err)
	}
	is.AddKey(t, jose.ES256)
	p, err := o.Token(ctx, is.Token(t, oidctest.Claims{"sub": "judy", "aud": []string{"other", audience}, "nickname": "J"}))
	if err != nil || p.Username != "judy" || p.DisplayName != "J" || p.Email != "" {
		t.Errorf("token of the rotated key, mapped claims: %+v, %v", p, err)
	}
}

// What must not pass is ErrRejected: another issuer, another audience,
// expired, a key the issuer does not publish, a tampered payload, an
// unsigned or HMAC token, no username claim.
func TestOIDCRejects(t *testing.T) {
	is := oidctest.Start(t)
	ctx := context.Background()
	o := newOIDC(t, auth.OIDCConfig{Issuer: is.URL, Audience: audience})
	good := is.Token(t, claims("ivan"))
	parts := strings.Split(good, ".")
	otherPayload := strings.Split(is.Token(t, claims("mallory")), ".")[1]
	noName := claims("x")
	delete(noName, "preferred_username")
	for name, tok := range map[string]string{
		"other issuer": is.Token(t, oidctest.Claims{"iss": "https://evil.example", "aud": audience, "preferred_username": "ivan"}),
		"other aud":    is.Token(t, oidctest.Claims{"aud": "another-app", "preferred_username": "ivan"}),
		"expired":      is.Token(t, oidctest.Claims{"aud": audience, "preferred_username": "ivan", "exp": time.Now().Add(-time.Hour).Unix()}),
		"foreign key":  oidctest.Sign(t, oidctest.NewKey(t, jose.RS256), oidctest.Claims{"iss": is.URL, "aud": audience, "preferred_username": "ivan"}),
		"tampered":     parts[0] + "." + otherPayload + "." + parts[2],
		"unsigned":     "eyJhbGciOiJub25lIn0." + parts[1] + ".",
		"hs256":        "eyJhbGciOiJIUzI1NiJ9." + parts[1] + ".c2lnbmF0dXJl",
		"garbage":      "not-a-jwt",
		"no username":  is.Token(t, noName),
	} {
		if _, err := o.Token(ctx, tok); !errors.Is(err, auth.ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
}

// An issuer that cannot be reached is a failure, never a yes or a no:
// discovery down, or the JWKS down when a token needs it.
func TestOIDCIssuerDown(t *testing.T) {
	is := oidctest.Start(t)
	ctx := context.Background()
	tok := is.Token(t, claims("ivan"))
	is.SetDown(true)
	for name, c := range map[string]auth.OIDCConfig{
		"discovery": {Issuer: is.URL, Audience: audience},
		"jwks":      {Issuer: is.URL, Audience: audience, JWKSURL: is.JWKSURL},
	} {
		_, err := newOIDC(t, c).Token(ctx, tok)
		if err == nil || errors.Is(err, auth.ErrRejected) || errors.Is(err, auth.ErrUnknownUser) {
			t.Errorf("%s down: %v, want a failure", name, err)
		}
	}
	// Up again: discovery is retried, the token verifies.
	o := newOIDC(t, auth.OIDCConfig{Issuer: is.URL, Audience: audience})
	if _, err := o.Token(ctx, tok); err == nil {
		t.Fatal("issuer down: no error")
	}
	is.SetDown(false)
	if p, err := o.Token(ctx, tok); err != nil || p.Username != "ivan" {
		t.Errorf("issuer back: %+v, %v", p, err)
	}
}

func TestNewOIDCErrors(t *testing.T) {
	for want, c := range map[string]auth.OIDCConfig{
		"--auth-oidc-issuer":   {Issuer: "", Audience: audience},
		"--auth-oidc-audience": {Issuer: "https://id.example"},
		"--auth-oidc-jwks-url": {Issuer: "https://id.example", Audience: audience, JWKSURL: "ftp://x"},
	} {
		if _, err := auth.NewOIDC(c); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}
