package logic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Identity is an authenticated session.
type Identity struct {
	AppID     int64 // the app of the user (and so of the session)
	UserID    int64
	Username  string
	SessionID string
	Device    string
	Platform  string
	ExpiresAt time.Time
}

// LoginResult is what a successful login returns.
type LoginResult struct {
	Token     string
	Identity  Identity
	ExpiresAt time.Time
	Gateway   *clusterpb.GatewayInfo
	User      store.User // its source and profile as of this login
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Register creates an account for a caller the per-address limits do
// not apply to (see RegisterFrom).
func (s *Service) Register(ctx context.Context, username, password string) (store.User, error) {
	return s.RegisterFrom(ctx, Client{}, username, password)
}

// RegisterFrom creates an account, limited per client address.
func (s *Service) RegisterFrom(ctx context.Context, from Client, username, password string) (store.User, error) {
	if err := validNewName(username); err != nil {
		return store.User{}, invalid(err.Error())
	}
	if err := validPassword(password); err != nil {
		return store.User{}, err
	}
	if err := s.admitRegister(from); err != nil {
		return store.User{}, err
	}
	app, err := s.clientApp(ctx, from)
	if err != nil {
		return store.User{}, err
	}
	if err := s.registrable(ctx, app, username); err != nil {
		return store.User{}, err
	}
	var h string
	if herr := s.hashWithin(ctx, func() { h, err = hashPassword(password) }); herr != nil {
		return store.User{}, herr
	}
	if err != nil {
		return store.User{}, err
	}
	u, err := s.store.CreateUser(ctx, app.ID, username, h)
	if errors.Is(err, store.ErrExists) {
		return u, &Error{Kind: KindConflict, Msg: "username is taken", Err: err}
	}
	return u, err
}

// loginKey is a username's login-limit bucket: names are per app.
func loginKey(app int64, username string) string {
	return strconv.FormatInt(appOrDefault(app), 10) + ":" + strings.ToLower(username)
}

func appOrDefault(app int64) int64 {
	if app == 0 {
		return store.DefaultApp
	}
	return app
}

func validPassword(p string) error {
	if len(p) < 6 {
		return invalid("password must be at least 6 bytes")
	}
	if len(p) > wire.MaxPassword {
		return tooLarge(fmt.Sprintf("password longer than %d bytes", wire.MaxPassword))
	}
	return nil
}

// Platform classes for the per-platform device policy.
func platformClass(p string) string {
	switch strings.ToLower(p) {
	case "ios", "android", "mobile":
		return "mobile"
	case "web", "browser":
		return "web"
	case "windows", "macos", "linux", "desktop", "mac":
		return "desktop"
	}
	return "other"
}

// Login is LoginFrom for a caller the per-address limits do not apply to.
func (s *Service) Login(ctx context.Context, username, password, device, platform string) (LoginResult, error) {
	return s.LoginFrom(ctx, Client{}, username, password, device, platform)
}

// LoginFrom checks credentials against the login sources (login.go),
// applies the device policy and picks a gateway. The login limits
// (admitLogin) are checked before the password is hashed or sent to a
// source, so a refused attempt costs no Argon2 work.
func (s *Service) LoginFrom(ctx context.Context, from Client, username, password, device, platform string) (LoginResult, error) {
	var res LoginResult
	if username == "" || password == "" {
		return res, invalid("username and password are required")
	}
	if len(password) > wire.MaxPassword || len(username) > wire.MaxUsername {
		// Same answer as a wrong password: nothing to learn from it.
		return res, ErrInvalidCredentials
	}
	device, err := loginDevice(device, platform)
	if err != nil {
		return res, err
	}
	app, err := s.clientApp(ctx, from)
	if err != nil {
		return res, err
	}
	succeeded, err := s.admitLogin(from, loginKey(app.ID, username))
	if err != nil {
		return res, err
	}
	u, err := s.passwordUser(ctx, app, username, password)
	if err != nil {
		return res, err
	}
	succeeded()
	return s.startSession(ctx, app, u, device, platform)
}

// loginDevice checks a login's device and platform, naming an unnamed
// device.
func loginDevice(device, platform string) (string, error) {
	if device == "" {
		device = "d-" + randomID(6)
	}
	if err := wire.ValidID(device, wire.MaxDevice); err != nil {
		return "", invalid("device: " + err.Error())
	}
	if len(platform) > wire.MaxDevice {
		return "", invalid("platform too long")
	}
	return device, nil
}

// startSession makes the session of a user whose credentials were
// checked: the device policy, a gateway, the session row and its token.
func (s *Service) startSession(ctx context.Context, app store.App, u store.User, device, platform string) (LoginResult, error) {
	var res LoginResult
	if !u.DisabledAt.IsZero() {
		return res, ErrAccountDisabled
	}
	now := s.now()
	kick, err := s.applyDevicePolicy(ctx, s.devicePolicy(app), u.ID, device, platform, now)
	if err != nil {
		return res, err
	}
	gw, err := s.gateways.Pick(u.ID)
	if err != nil {
		return res, unavailable("no gateway available, retry", time.Second, ErrNoGateway)
	}
	sess := store.Session{ID: randomID(16), UserID: u.ID, Device: device, Platform: platform, CreatedAt: now, ExpiresAt: now.Add(s.cfg.TokenTTL)}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return res, err
	}
	// A password change between our check and CreateSession ended every
	// other session before this one existed: look again, now that it does
	// (a change after this read lists and ends it).
	// The same for a disable or delete (moderation.go).
	if cur, err := s.store.UserByID(ctx, u.ID); err != nil || cur.PasswordHash != u.PasswordHash || !cur.DisabledAt.IsZero() {
		s.revoke(ctx, sess, KindLoggedOut, "password changed")
		switch {
		case err != nil:
			return res, err
		case !cur.DisabledAt.IsZero():
			return res, ErrAccountDisabled
		}
		return res, ErrInvalidCredentials
	}
	for _, old := range kick {
		s.revoke(ctx, old, KindReplaced, "signed in on another device")
	}
	res.Token = s.tokens.sign(tokenClaims{Session: sess.ID, User: u.ID, Expires: sess.ExpiresAt.Unix()})
	res.Identity = Identity{AppID: app.ID, UserID: u.ID, Username: u.Username, SessionID: sess.ID, Device: device, Platform: platform, ExpiresAt: sess.ExpiresAt}
	res.ExpiresAt = sess.ExpiresAt
	res.Gateway = gw
	res.User = u
	return res, nil
}

// applyDevicePolicy returns the sessions the new login replaces, or
// ErrDeviceLimit if the policy rejects new devices. A login with the name
// of an existing device always replaces that device's session.
func (s *Service) applyDevicePolicy(ctx context.Context, policy DevicePolicy, userID int64, device, platform string, now time.Time) ([]store.Session, error) {
	active, err := s.store.ActiveSessions(ctx, userID, now)
	if err != nil {
		return nil, err
	}
	var replace, conflict []store.Session
	for _, a := range active {
		switch {
		case a.Device == device:
			replace = append(replace, a)
		case policy == DevicesSingle:
			conflict = append(conflict, a)
		case policy == DevicesPerPlatform && platformClass(a.Platform) == platformClass(platform):
			conflict = append(conflict, a)
		}
	}
	if len(conflict) > 0 && s.cfg.RejectNewDevice {
		// Only a device that is online now blocks the new login: one whose
		// app was closed, or whose gateway crashed, must not lock the user
		// out until its token expires (the seeds' "already logged in").
		live := map[string]bool{}
		for _, c := range s.presence.Conns(userID) {
			live[c.SessionId] = true
		}
		for _, c := range conflict {
			if live[c.ID] {
				return nil, &Error{Kind: KindDeviceLimit, Msg: "already signed in on another device", Err: ErrDeviceLimit}
			}
		}
	}
	return s.capSessions(active, append(replace, conflict...)), nil
}

// kick sends a Kick and closes each connection.
func (s *Service) kick(conns []*clusterpb.ConnRef, kind Kind, reason string) {
	if len(conns) == 0 {
		return
	}
	code := codes[kind]
	env := s.enc.Kick(code, reason)
	for gw, ids := range byGateway(conns) {
		if err := s.out.Deliver(gw, &clusterpb.Delivery{Conns: ids, Envelope: env, CloseCode: uint32(code)}); err != nil {
			s.log.Warn("kick delivery", "gateway", gw, "err", err)
		}
	}
}

// Route picks a live gateway for an authenticated session, so a client
// whose gateway drained or died moves on without a new login (and the
// Argon2 hash a login costs).
func (s *Service) Route(ctx context.Context, id Identity) (*clusterpb.GatewayInfo, error) {
	gw, err := s.gateways.Pick(id.UserID)
	if err != nil {
		return nil, unavailable("no gateway available, retry", time.Second, ErrNoGateway)
	}
	return gw, nil
}

// Logout revokes the session; its connections close.
func (s *Service) Logout(ctx context.Context, id Identity) error {
	s.revoke(ctx, store.Session{ID: id.SessionID, UserID: id.UserID}, KindLoggedOut, "logged out")
	return nil
}

// Authenticate turns a token into an identity: signature, expiry, and a
// live (not revoked) session.
func (s *Service) Authenticate(ctx context.Context, token string) (Identity, error) {
	now := s.now()
	c, err := s.tokens.verify(token, now)
	if err != nil {
		return Identity{}, err
	}
	sess, err := s.store.Session(ctx, c.Session)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, ErrUnauthenticated
	} else if err != nil {
		return Identity{}, err
	}
	if sess.Revoked || !now.Before(sess.ExpiresAt) || sess.UserID != c.User {
		return Identity{}, ErrUnauthenticated
	}
	s.seen(sess.ID, now)
	u, err := s.userOf(ctx, sess.UserID) // cached: names and apps never change
	if err != nil {
		return Identity{}, err
	}
	return Identity{AppID: u.app, UserID: sess.UserID, Username: u.name, SessionID: sess.ID, Device: sess.Device, Platform: sess.Platform, ExpiresAt: sess.ExpiresAt}, nil
}

// OnlineUser is a user with live connections.
type OnlineUser struct {
	UserID   int64    `json:"user_id"`
	Username string   `json:"username"`
	Devices  []string `json:"devices"`
}
