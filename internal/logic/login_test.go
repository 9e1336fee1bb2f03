package logic

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// fakeSource is an outside source with a directory (names folded, as
// LDAP compares them): name → password
// and profile; down makes every call fail.
type fakeSource struct {
	name string
	mu   sync.Mutex
	pw   map[string]string
	prof map[string]auth.Profile
	tok  map[string]string // token → username
	down bool
	asks int
}

func newFakeSource(name string) *fakeSource {
	return &fakeSource{name: name, pw: map[string]string{}, prof: map[string]auth.Profile{}, tok: map[string]string{}}
}

func (f *fakeSource) add(user, password, display, email string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pw[strings.ToLower(user)], f.prof[strings.ToLower(user)] = password, auth.Profile{Username: user, DisplayName: display, Email: email}
}

func (f *fakeSource) Name() string { return f.name }

func (f *fakeSource) Password(_ context.Context, user, password string) (auth.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asks++
	if f.down {
		return auth.Profile{}, errors.New("directory down")
	}
	want, ok := f.pw[strings.ToLower(user)]
	if !ok {
		return auth.Profile{}, auth.ErrUnknownUser
	}
	if want != password {
		return auth.Profile{}, auth.ErrRejected
	}
	return f.prof[strings.ToLower(user)], nil
}

func (f *fakeSource) Token(_ context.Context, token string) (auth.Profile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return auth.Profile{}, errors.New("issuer down")
	}
	user, ok := f.tok[token]
	if !ok {
		return auth.Profile{}, auth.ErrRejected
	}
	return f.prof[user], nil
}

func (f *fakeSource) Exists(_ context.Context, user string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return false, errors.New("directory down")
	}
	_, ok := f.pw[strings.ToLower(user)]
	return ok, nil
}

func chainOf(srcs ...any) []AuthSource {
	var out []AuthSource
	for _, s := range srcs {
		switch s := s.(type) {
		case string:
			out = append(out, AuthSource{Name: s})
		case *fakeSource:
			out = append(out, AuthSource{Name: s.name, Password: s, Token: s, Directory: s})
		}
	}
	return out
}

// A directory user logs in, is created on the first login with its
// profile, refreshed on the next; wrong passwords and unknown names are
// invalid credentials; the session is a normal one.
func TestLoginFromDirectory(t *testing.T) {
	dir := newFakeSource(auth.LDAP)
	dir.add("carol", "dir-pass-1", "Carol C", "carol@example.org")
	s, _ := newTestService(t, func(c *Config) { c.Auth = chainOf(auth.Local, dir) })
	ctx := context.Background()

	res, err := s.Login(ctx, "Carol", "dir-pass-1", "", "")
	if err != nil {
		t.Fatalf("first login: %v", err)
	}
	u, err := s.store.UserByName(ctx, store.DefaultApp, "carol")
	if err != nil || u.AuthSource != auth.LDAP || u.Username != "carol" || u.DisplayName != "Carol C" || u.Email != "carol@example.org" || u.PasswordHash != "" {
		t.Fatalf("user after the first login = %+v, %v; want carol from ldap with its profile", u, err)
	}
	if res.Identity.UserID != u.ID || res.User.DisplayName != "Carol C" {
		t.Errorf("login result %+v, want user %d with its profile", res, u.ID)
	}
	if id, err := s.Authenticate(ctx, res.Token); err != nil || id.UserID != u.ID {
		t.Errorf("Authenticate(token) = %+v, %v", id, err)
	}

	dir.add("carol", "dir-pass-2", "Carol Changed", "")
	if _, err := s.Login(ctx, "carol", "dir-pass-2", "", ""); err != nil {
		t.Fatalf("login after the directory changed: %v", err)
	}
	if u2, _ := s.store.UserByID(ctx, u.ID); u2.DisplayName != "Carol Changed" || u2.Email != "" {
		t.Errorf("profile after the second login = %+v, want it refreshed", u2)
	}
	_, err = s.Login(ctx, "carol", "dir-pass-1", "", "")
	wantCode(t, "old directory password", err, wire.CodeInvalidCredential)
	_, err = s.Login(ctx, "nobody", "whatever1", "", "")
	wantCode(t, "unknown everywhere", err, wire.CodeInvalidCredential)

	// A local account still works beside it.
	login(t, s, "alice", "", "")
	// The directory password cannot be changed here.
	err = s.ChangePassword(ctx, res.Identity, "dir-pass-2", "new-pass-1")
	wantCode(t, "change a directory user's password", err, wire.CodeForbidden)
}

// No source may take another's user: a local registration cannot shadow
// a directory name (even before its first login), a local user's name
// is not logged in through the directory, and a directory user is not
// logged in with a local password.
func TestLoginSourcesDoNotShadow(t *testing.T) {
	dir := newFakeSource(auth.LDAP)
	dir.add("carol", "dir-pass-1", "", "")
	s, _ := newTestService(t, func(c *Config) { c.Auth = chainOf(auth.Local, dir) })
	ctx := context.Background()

	_, err := s.Register(ctx, "CAROL", "local-pass-1")
	wantCode(t, "register a directory name before its first login", err, wire.CodeConflict)
	if _, err := s.Login(ctx, "carol", "dir-pass-1", "", ""); err != nil {
		t.Fatalf("directory login: %v", err)
	}
	_, err = s.Register(ctx, "carol", "local-pass-1")
	wantCode(t, "register a directory user's name", err, wire.CodeConflict)

	// alice is local first; then the directory gets an alice too.
	login(t, s, "alice", "", "")
	dir.add("alice", "dir-alice-1", "", "")
	_, err = s.Login(ctx, "alice", "dir-alice-1", "", "")
	wantCode(t, "directory password for a local user", err, wire.CodeInvalidCredential)
	if _, err := s.Login(ctx, "alice", "password1", "", ""); err != nil {
		t.Errorf("local password for the local alice: %v", err)
	}

	// The directory down: registration fails closed, local logins go on.
	dir.down = true
	_, err = s.Register(ctx, "dave", "local-pass-1")
	wantCode(t, "register while the directory is down", err, wire.CodeUnavailable)
	if _, err := s.Login(ctx, "alice", "password1", "", ""); err != nil {
		t.Errorf("local login while the directory is down: %v", err)
	}
}

// A source that cannot answer fails the login closed (unavailable, the
// next source not asked); one that does not know the name passes it on.
func TestLoginChainOrderAndFailure(t *testing.T) {
	first, second := newFakeSource(auth.LDAP), newFakeSource(auth.HTTP)
	second.add("erin", "http-pass-1", "Erin", "")
	s, _ := newTestService(t, func(c *Config) { c.Auth = chainOf(first, second) })
	ctx := context.Background()

	if _, err := s.Login(ctx, "erin", "http-pass-1", "", ""); err != nil {
		t.Fatalf("login passed on to the second source: %v", err)
	}
	if u, _ := s.store.UserByName(ctx, store.DefaultApp, "erin"); u.AuthSource != auth.HTTP {
		t.Errorf("erin's source %q, want http", u.AuthSource)
	}
	first.add("frank", "ldap-pass-1", "", "")
	second.add("frank", "http-pass-2", "", "")
	_, err := s.Login(ctx, "frank", "http-pass-2", "", "")
	wantCode(t, "wrong password at the first source that knows the name", err, wire.CodeInvalidCredential)

	first.down = true
	second.mu.Lock()
	before := second.asks
	second.mu.Unlock()
	_, err = s.Login(ctx, "grace", "whatever1", "", "")
	wantCode(t, "first source down", err, wire.CodeUnavailable)
	if RetryAfter(err) <= 0 {
		t.Errorf("first source down: no retry-after in %v", err)
	}
	if second.asks != before {
		t.Errorf("the second source was asked after the first failed")
	}
	// Without local in --auth there is no registration.
	_, err = s.Register(ctx, "henry", "local-pass-1")
	wantCode(t, "register without local", err, wire.CodeForbidden)
}

// POST /v1/login/token: the token source names the user, created or
// refreshed like a password login; a name held by another source is not
// given to it.
func TestLoginToken(t *testing.T) {
	idp := newFakeSource(auth.OIDC)
	idp.add("ivan", "", "Ivan", "ivan@example.org")
	idp.add("alice", "", "", "")
	idp.tok["tok-ivan"], idp.tok["tok-alice"] = "ivan", "alice"
	s, _ := newTestService(t, func(c *Config) {
		c.Auth = []AuthSource{{Name: auth.Local}, {Name: auth.OIDC, Token: idp}}
	})
	ctx := context.Background()
	res, err := s.LoginToken(ctx, Client{}, "tok-ivan", "phone", "ios")
	if err != nil {
		t.Fatalf("LoginToken: %v", err)
	}
	if res.Identity.Username != "ivan" || res.Identity.Device != "phone" || res.User.AuthSource != auth.OIDC || res.User.Email != "ivan@example.org" {
		t.Errorf("LoginToken = %+v", res)
	}
	again, err := s.LoginToken(ctx, Client{}, "tok-ivan", "", "")
	if err != nil || again.Identity.UserID != res.Identity.UserID {
		t.Errorf("second LoginToken = %+v, %v; want the same user", again, err)
	}
	login(t, s, "alice", "", "")
	_, err = s.LoginToken(ctx, Client{}, "tok-alice", "", "")
	wantCode(t, "token for a local user's name", err, wire.CodeInvalidCredential)
	_, err = s.LoginToken(ctx, Client{}, "forged", "", "")
	wantCode(t, "rejected token", err, wire.CodeInvalidCredential)
	_, err = s.LoginToken(ctx, Client{}, "", "", "")
	wantCode(t, "empty token", err, wire.CodeBadRequest)
	idp.down = true
	_, err = s.LoginToken(ctx, Client{}, "tok-ivan", "", "")
	wantCode(t, "issuer down", err, wire.CodeUnavailable)
	// An ivan cannot log in by password: the token source has none.
	_, err = s.Login(ctx, "ivan", "whatever1", "", "")
	wantCode(t, "password for a token user", err, wire.CodeInvalidCredential)

	local, _ := newTestService(t, nil)
	_, err = local.LoginToken(ctx, Client{}, "tok-ivan", "", "")
	wantCode(t, "token login without a token source", err, wire.CodeNotFound)
}
