package logic

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// AuthSource is one entry of --auth: a name and what the source can do
// (internal/auth). The local accounts are {Name: auth.Local} with no
// capabilities: logic checks them itself.
type AuthSource struct {
	Name      string
	Password  auth.PasswordSource // POST /v1/login; nil: not asked
	Token     auth.TokenSource    // POST /v1/login/token; nil: not asked
	Directory auth.Directory      // asked at registration; nil: not asked
}

// ErrAuthUnavailable is a login source that could not answer (down, slow,
// misconfigured): the login fails closed.
var ErrAuthUnavailable = errors.New("login source unavailable")

// MaxLoginToken bounds the token of POST /v1/login/token.
const MaxLoginToken = 16 << 10

// The login chain. A user belongs to the source that created it
// (users.auth_source): once it exists, only that source checks its
// password, whatever the order of --auth, so a directory user cannot be
// taken over by a local password nor a local account by the directory. A
// name nobody holds yet is offered to the outside sources in --auth order:
// the first that knows it (a Profile) creates the user; one that does not
// (auth.ErrUnknownUser) passes it on; one that rejects it ends the login;
// one that fails ends it as unavailable (fail closed).

func (s *Service) authChain() []AuthSource {
	if len(s.cfg.Auth) == 0 {
		return []AuthSource{{Name: auth.Local}}
	}
	return s.cfg.Auth
}

// authSource finds a source in an app's chain.
func (s *Service) authSource(app store.App, name string) (AuthSource, bool) {
	for _, a := range s.appChain(app) {
		if a.Name == name {
			return a, true
		}
	}
	return AuthSource{}, false
}

func sourceOf(u store.User) string {
	if u.AuthSource == "" {
		return auth.Local
	}
	return u.AuthSource
}

// passwordUser checks a username and password against the chain and
// returns the user, created on its first login from an outside source.
func (s *Service) passwordUser(ctx context.Context, app store.App, username, password string) (store.User, error) {
	u, err := s.store.UserByName(ctx, app.ID, username)
	switch {
	case err == nil:
		return s.checkExisting(ctx, app, u, password)
	case !errors.Is(err, store.ErrNotFound):
		return store.User{}, err
	}
	_, local := s.authSource(app, auth.Local)
	for _, src := range s.appChain(app) {
		if src.Password == nil {
			continue
		}
		p, err := src.Password.Password(ctx, username, password)
		if errors.Is(err, auth.ErrUnknownUser) {
			continue
		}
		if err != nil {
			return store.User{}, s.sourceFailed(src.Name, username, err)
		}
		if p.Username == "" {
			p.Username = username
		}
		return s.sourceUser(ctx, app, src.Name, p)
	}
	if local {
		// No such user: the same Argon2 work as a wrong password, so the
		// time does not tell which it was.
		var herr error
		if herr = s.hashWithin(ctx, func() { _, _ = checkPassword(dummyHash(), password) }); herr != nil {
			return store.User{}, herr
		}
	}
	return store.User{}, ErrInvalidCredentials
}

// checkExisting checks the password of an existing user with the source
// the user belongs to.
func (s *Service) checkExisting(ctx context.Context, app store.App, u store.User, password string) (store.User, error) {
	name := sourceOf(u)
	src, ok := s.authSource(app, name)
	if !ok || (name != auth.Local && src.Password == nil) {
		// Its source is not in --auth (any more): nobody may vouch for it.
		s.log.Warn("login: the user's source is not in --auth", "user", u.Username, "source", name)
		return store.User{}, ErrInvalidCredentials
	}
	if name == auth.Local {
		var ok bool
		var err error
		if herr := s.hashWithin(ctx, func() { ok, err = checkPassword(u.PasswordHash, password) }); herr != nil {
			return store.User{}, herr
		}
		if err != nil || !ok {
			return store.User{}, ErrInvalidCredentials
		}
		return u, nil
	}
	p, err := src.Password.Password(ctx, u.Username, password)
	if err != nil {
		return store.User{}, s.sourceFailed(name, u.Username, err)
	}
	if !strings.EqualFold(p.Username, u.Username) && p.Username != "" {
		return store.User{}, s.sourceFailed(name, u.Username, errors.New("the source answered for another user"))
	}
	return s.refreshProfile(ctx, u, p)
}

// LoginToken is POST /v1/login/token: a token from outside (an OIDC ID
// token, an app's signed JWT, or what the HTTP source accepts) exchanged
// for a Magpie session. The token sources of --auth are asked in order;
// the first that accepts the token names the user.
func (s *Service) LoginToken(ctx context.Context, from Client, token, device, platform string) (LoginResult, error) {
	var res LoginResult
	if token == "" {
		return res, invalid("token is required")
	}
	if len(token) > MaxLoginToken {
		return res, ErrInvalidCredentials
	}
	app, err := s.clientApp(ctx, from)
	if err != nil {
		return res, err
	}
	var sources []AuthSource
	for _, src := range s.appChain(app) {
		if src.Token != nil {
			sources = append(sources, src)
		}
	}
	if len(sources) == 0 {
		return res, &Error{Kind: KindNotFound, Msg: "token login is off: --auth names no oidc or http source", Err: ErrBadRequest}
	}
	device, err = loginDevice(device, platform)
	if err != nil {
		return res, err
	}
	succeeded, err := s.admitLogin(from, "")
	if err != nil {
		return res, err
	}
	for _, src := range sources {
		p, err := src.Token.Token(ctx, token)
		if errors.Is(err, auth.ErrUnknownUser) {
			continue
		}
		if err != nil {
			return res, s.sourceFailed(src.Name, "", err)
		}
		if ok, wait := s.logins.allow(loginKey(app.ID, p.Username), s.now()); !ok {
			return res, s.refuse(LimitLoginUser, rateLimited("too many login attempts", wait))
		}
		u, err := s.sourceUser(ctx, app, src.Name, p)
		if err != nil {
			return res, err
		}
		succeeded()
		return s.startSession(ctx, app, u, device, platform)
	}
	return res, ErrInvalidCredentials
}

// sourceUser is the user a source vouched for: made on its first login,
// its profile refreshed on the others. A name held by a user of another
// source is refused (no source takes over another's user).
func (s *Service) sourceUser(ctx context.Context, app store.App, source string, p auth.Profile) (store.User, error) {
	if err := wire.ValidName(p.Username); err != nil {
		return store.User{}, s.sourceFailed(source, p.Username, errors.New("the source's username is not a valid Magpie name: "+err.Error()))
	}
	u, err := s.store.UserByName(ctx, app.ID, p.Username)
	if errors.Is(err, store.ErrNotFound) {
		if err := validNewName(p.Username); err != nil {
			return store.User{}, s.sourceFailed(source, p.Username, err)
		}
		u, err = s.store.CreateExternalUser(ctx, store.User{AppID: app.ID, Username: p.Username, AuthSource: source, DisplayName: p.DisplayName, Email: p.Email})
		if err == nil {
			return u, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return store.User{}, err
		}
		// A concurrent first login (or registration) took the name.
		u, err = s.store.UserByName(ctx, app.ID, p.Username)
	}
	if err != nil {
		return store.User{}, err
	}
	if sourceOf(u) != source {
		s.log.Warn("login: the name belongs to a user of another source", "user", u.Username, "source", source, "owner", sourceOf(u))
		return store.User{}, ErrInvalidCredentials
	}
	return s.refreshProfile(ctx, u, p)
}

// refreshProfile writes the source's profile when it changed.
func (s *Service) refreshProfile(ctx context.Context, u store.User, p auth.Profile) (store.User, error) {
	if p.DisplayName == u.DisplayName && p.Email == u.Email {
		return u, nil
	}
	if err := s.store.SetProfile(ctx, u.ID, p.DisplayName, p.Email); err != nil {
		return store.User{}, err
	}
	u.DisplayName, u.Email = p.DisplayName, p.Email
	return u, nil
}

// sourceFailed turns a source's answer into the login's error: a refusal
// is a wrong password (or an unknown user, for a user the source once
// had); anything else is logged and refuses the login as unavailable.
func (s *Service) sourceFailed(source, username string, err error) error {
	if errors.Is(err, auth.ErrRejected) || errors.Is(err, auth.ErrUnknownUser) {
		return ErrInvalidCredentials
	}
	s.log.Warn("login: source failed, login refused", "source", source, "user", username, "err", err)
	return unavailable("login source "+source+" unavailable, retry", time.Second, ErrAuthUnavailable)
}

// registrable refuses a registration the chain forbids: without "local"
// in --auth there are no local accounts, and a name a directory holds is
// taken even before its user first logs in. A directory that cannot
// answer refuses the registration (it might hold the name).
func (s *Service) registrable(ctx context.Context, app store.App, username string) error {
	if _, ok := s.authSource(app, auth.Local); !ok {
		from := "elsewhere"
		if chain := s.appChain(app); len(chain) > 0 {
			from = chain[0].Name
		}
		return forbidden("registration is off: accounts come from "+from, ErrBadRequest)
	}
	for _, src := range s.appChain(app) {
		if src.Directory == nil {
			continue
		}
		held, err := src.Directory.Exists(ctx, username)
		if err != nil {
			s.log.Warn("register: directory failed, registration refused", "source", src.Name, "user", username, "err", err)
			return unavailable("directory "+src.Name+" unavailable, retry", time.Second, ErrAuthUnavailable)
		}
		if held {
			return &Error{Kind: KindConflict, Msg: "username is taken", Err: store.ErrExists}
		}
	}
	return nil
}
