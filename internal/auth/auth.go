// Package auth holds Magpie's outside login sources: an LDAP directory
// (ldap.go), the operator's own HTTP endpoint (http.go) and OIDC / JWT
// tokens verified against a JWKS (oidc.go). The logic role tries them in
// the order of --auth, beside its own local accounts; whatever the source,
// the result is a Profile, and logic makes (or refreshes) the Magpie user
// and a normal session from it.
//
// A source answers one of three ways, and the difference matters:
//   - a Profile: the credentials are good;
//   - ErrUnknownUser: the source has no such user, so logic may try the
//     next one;
//   - ErrRejected: the user is the source's and the credentials are wrong
//     (or the source refuses the login): logic stops there.
//
// Any other error means the source could not answer (down, timed out,
// misconfigured): logic fails closed, refusing the login as unavailable,
// and does not try the next source.
//
// Every source is safe for concurrent use.
package auth

import (
	"context"
	"errors"
)

var (
	// ErrUnknownUser: the source has no such user.
	ErrUnknownUser = errors.New("auth: no such user in this source")
	// ErrRejected: wrong credentials, or the source refuses the login.
	ErrRejected = errors.New("auth: credentials rejected")
)

// Profile is what a source knows of the user it accepted. Username is the
// Magpie username; the other fields are refreshed on every login.
type Profile struct {
	Username    string
	DisplayName string
	Email       string
}

// Source names as --auth spells them; a user row records the one that
// created it (users.auth_source).
const (
	Local = "local"
	LDAP  = "ldap"
	HTTP  = "http"
	OIDC  = "oidc"
)

// PasswordSource checks a username and password (POST /v1/login).
type PasswordSource interface {
	Name() string
	Password(ctx context.Context, username, password string) (Profile, error)
}

// TokenSource turns a token the client got elsewhere into a profile (POST
// /v1/login/token).
type TokenSource interface {
	Name() string
	Token(ctx context.Context, token string) (Profile, error)
}

// Directory is a source that can tell whether a username is its own,
// without a password: registration asks it, so that no local account can
// take a directory user's name.
type Directory interface {
	Name() string
	Exists(ctx context.Context, username string) (bool, error)
}
