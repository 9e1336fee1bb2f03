package logic

// Apps (issue 12): the tenants of one deployment. Every user belongs to one
// app, so a session (and its token) is bound to its user's app; every
// lookup by name is within the caller's app and every list (online users,
// broadcast) holds only its users. Conversations, groups and friends are
// between users found that way, so they never span apps; the operations
// that take an id instead of a name (joining or viewing an open group, a
// push to a group) check the app themselves.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/store"
)

// appsTTL is how long a node trusts its copy of the app list: a new app,
// changed settings or rotated keys take effect on every node within it.
const appsTTL = 5 * time.Second

// MaxAppName bounds an app's name.
const MaxAppName = 64

var appNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ErrNoSuchApp is an app name or host that no app has.
var ErrNoSuchApp = errors.New("no such app")

type appCache struct {
	mu     sync.Mutex
	loaded time.Time
	list   []store.App

	// snap is the last list loaded, for cachedApp, which must not wait
	// behind a reload that holds mu; reloading makes its reloads one at
	// a time.
	snap      atomic.Pointer[appSnap]
	reloading atomic.Bool
}

type appSnap struct {
	list   []store.App
	loaded time.Time
}

// appList returns the apps, reloading them after appsTTL (or at once
// with fresh set, after a miss that a new app may explain).
func (s *Service) appList(ctx context.Context, fresh bool) ([]store.App, error) {
	c := &s.apps
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.list != nil && !fresh && s.now().Sub(c.loaded) < appsTTL {
		return c.list, nil
	}
	if c.list != nil && fresh && s.now().Sub(c.loaded) < time.Second {
		return c.list, nil // a miss reloads at most once a second
	}
	list, err := s.store.AppList(ctx)
	if err != nil {
		return nil, err
	}
	c.list, c.loaded = list, s.now()
	c.snap.Store(&appSnap{list, c.loaded})
	return list, nil
}

// cachedApp is an app from the last list loaded, without waiting for the
// database on the paths that call it (events after a commit): a list older
// than appsTTL is reloaded in the background, and only a node that never
// loaded one reads it here.
func (s *Service) cachedApp(id int64) (store.App, bool) {
	c := &s.apps
	snap := c.snap.Load()
	if snap == nil {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		_, err := s.appList(ctx, false)
		cancel()
		if snap = c.snap.Load(); err != nil || snap == nil {
			return store.App{}, false
		}
	} else if s.now().Sub(snap.loaded) >= appsTTL && c.reloading.CompareAndSwap(false, true) {
		go func() {
			defer c.reloading.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			defer cancel()
			_, _ = s.appList(ctx, false)
		}()
	}
	for _, a := range snap.list {
		if a.ID == id {
			return a, true
		}
	}
	return store.App{}, false
}

// findApp returns the first app that match accepts, reloading the list
// once on a miss.
func (s *Service) findApp(ctx context.Context, match func(store.App) bool) (store.App, error) {
	for _, fresh := range []bool{false, true} {
		list, err := s.appList(ctx, fresh)
		if err != nil {
			return store.App{}, err
		}
		for _, a := range list {
			if match(a) {
				return a, nil
			}
		}
	}
	return store.App{}, ErrNoSuchApp
}

// appByID returns an app; the default app always exists.
func (s *Service) appByID(ctx context.Context, id int64) (store.App, error) {
	if id == 0 {
		id = store.DefaultApp
	}
	return s.findApp(ctx, func(a store.App) bool { return a.ID == id })
}

// clientApp is the app a register or login names: Client.App by name,
// else the app whose hosts hold Client.Host, else the default app.
func (s *Service) clientApp(ctx context.Context, c Client) (store.App, error) {
	if c.App != "" {
		a, err := s.findApp(ctx, func(a store.App) bool { return a.Name == c.App })
		if errors.Is(err, ErrNoSuchApp) {
			return a, notFound("no such app: "+c.App, err)
		}
		return a, err
	}
	if host := hostOnly(c.Host); host != "" {
		list, err := s.appList(ctx, false)
		if err != nil {
			return store.App{}, err
		}
		for _, a := range list {
			for _, h := range a.Settings.Hosts {
				if strings.EqualFold(h, host) {
					return a, nil
				}
			}
		}
	}
	return s.appByID(ctx, store.DefaultApp)
}

// hostOnly drops a port from a Host header.
func hostOnly(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[i:], "]") {
		h = h[:i]
	}
	return strings.Trim(h, "[]")
}

// AppForKey returns the app whose push (admin false) or admin key id is
// keyID, and its secret. The server's --push-keys and --admin-keys are the
// default app's and are not looked up here.
func (s *Service) AppForKey(ctx context.Context, keyID string, admin bool) (store.App, []byte, error) {
	a, err := s.findApp(ctx, func(a store.App) bool {
		if admin {
			return a.Keys.AdminKeyID == keyID
		}
		return a.Keys.PushKeyID == keyID
	})
	if err != nil {
		return store.App{}, nil, err
	}
	if admin {
		return a, []byte(a.Keys.AdminSecret), nil
	}
	return a, []byte(a.Keys.PushSecret), nil
}

// Apps lists the apps (operators: `magpie app list`, GET /v1/admin/apps).
func (s *Service) Apps(ctx context.Context) ([]store.App, error) {
	return s.appList(ctx, true)
}

// AppByName returns one app, for operators.
func (s *Service) AppByName(ctx context.Context, name string) (store.App, error) {
	a, err := s.findApp(ctx, func(a store.App) bool { return a.Name == name })
	if errors.Is(err, ErrNoSuchApp) {
		return a, notFound("no such app: "+name, err)
	}
	return a, err
}

// CreateApp makes an app with new keys (operators).
func (s *Service) CreateApp(ctx context.Context, name string, settings store.AppSettings) (store.App, error) {
	if err := ValidAppName(name); err != nil {
		return store.App{}, err
	}
	if err := ValidAppSettings(settings, s.sourceNames()); err != nil {
		return store.App{}, err
	}
	a, err := s.store.CreateApp(ctx, store.App{Name: name, Settings: settings, Keys: NewAppKeys(name)})
	if errors.Is(err, store.ErrExists) {
		return a, &Error{Kind: KindConflict, Msg: "an app named " + name + " exists", Err: err}
	}
	if err != nil {
		return a, err
	}
	s.forgetApps()
	return a, nil
}

// RotateAppKeys gives an app new push and admin keys; the old ones stop
// working on every node at once (forgetApps), or within appsTTL on one
// that missed the word.
func (s *Service) RotateAppKeys(ctx context.Context, name string) (store.App, error) {
	a, err := s.AppByName(ctx, name)
	if err != nil {
		return a, err
	}
	if a.ID == store.DefaultApp {
		return a, invalid("the default app's keys are --push-keys and --admin-keys")
	}
	a.Keys = NewAppKeys(name)
	if err := s.store.SetAppKeys(ctx, a.ID, a.Keys); err != nil {
		return a, err
	}
	s.forgetApps()
	return a, nil
}

// forgetApps drops this node's copy of the app list after a change made
// here, so the next lookup reads it (a miss alone reloads at most once a
// second, and a new app would be unknown until then), and has the other
// logic nodes do the same (Config.OnForget).
func (s *Service) forgetApps() {
	s.ForgetApps()
	if s.cfg.OnForget != nil {
		s.cfg.OnForget(0)
	}
}

// ForgetApps drops this node's copy of the app list: another node changed
// an app (Config.OnForget).
func (s *Service) ForgetApps() {
	s.apps.mu.Lock()
	s.apps.list = nil
	s.apps.snap.Store(nil)
	s.apps.mu.Unlock()
}

// ValidAppName: 1-64 of lowercase letters, digits, '_' and '-', starting
// with a letter or digit.
func ValidAppName(name string) error {
	if len(name) > MaxAppName || !appNameRE.MatchString(name) {
		return invalid(fmt.Sprintf("app name must be 1-%d lowercase letters, digits, '_' or '-', starting with a letter or digit", MaxAppName))
	}
	return nil
}

func (s *Service) sourceNames() []string {
	var names []string
	for _, a := range s.authChain() {
		names = append(names, a.Name)
	}
	return names
}

// ValidAppSettings checks an app's settings; auth may name only sources
// (the server's --auth).
func ValidAppSettings(st store.AppSettings, sources []string) error {
	switch DevicePolicy(st.DevicePolicy) {
	case "", DevicesUnlimited, DevicesSingle, DevicesPerPlatform:
	default:
		return invalid("device_policy must be unlimited, single or per-platform")
	}
	if st.MaxGroupSize < 0 {
		return invalid("max_group_size must not be negative")
	}
	for _, name := range st.Auth {
		if !slices.Contains(sources, name) {
			return invalid(fmt.Sprintf("auth: %q is not one of %s", name, strings.Join(sources, ", ")))
		}
	}
	for _, h := range st.Hosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			return invalid("hosts are host names without port or scheme")
		}
	}
	for _, u := range st.WebhookURLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return invalid("webhook_urls must be http:// or https:// URLs")
		}
	}
	for _, u := range []string{st.BeforeSendURL, st.BeforeAddURL} {
		if u != "" && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return invalid("before_send_url and before_add_url must be http:// or https:// URLs")
		}
	}
	if (len(st.WebhookURLs) > 0 || st.BeforeSendURL != "" || st.BeforeAddURL != "") && len(st.WebhookSecret) < 16 {
		return invalid("webhook_secret of at least 16 characters is required with webhook_urls, before_send_url or before_add_url")
	}
	return nil
}

// NewAppKeys makes a push and an admin key for an app: ids that name the
// app (readable in logs), random secrets.
func NewAppKeys(app string) store.AppKeys {
	return store.AppKeys{
		PushKeyID: app + "-push-" + randomID(4), PushSecret: randomSecret(),
		AdminKeyID: app + "-admin-" + randomID(4), AdminSecret: randomSecret(),
	}
}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// appOf is the app of a user id (cached with its name: neither changes).
func (s *Service) appOf(ctx context.Context, uid int64) (int64, error) {
	u, err := s.userOf(ctx, uid)
	return u.app, err
}

// HasApps reports whether there are apps besides the default.
func (s *Service) HasApps(ctx context.Context) bool {
	list, err := s.appList(ctx, false)
	return err == nil && len(list) > 1
}

// multiApp reports whether the deployment has apps besides the default:
// without them, lists need no filtering (single-tenant cost unchanged).
func (s *Service) multiApp(ctx context.Context) bool {
	list, err := s.appList(ctx, false)
	return err != nil || len(list) > 1
}

// inApp keeps the ids of users of app.
func (s *Service) inApp(ctx context.Context, app int64, ids []int64) ([]int64, error) {
	out := ids[:0:0]
	for _, id := range ids {
		a, err := s.appOf(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if a == app {
			out = append(out, id)
		}
	}
	return out, nil
}

// settings of an app over the flags.

func (s *Service) devicePolicy(a store.App) DevicePolicy {
	if a.Settings.DevicePolicy != "" {
		return DevicePolicy(a.Settings.DevicePolicy)
	}
	return s.cfg.DevicePolicy
}

func (s *Service) requireFriendship(ctx context.Context, app int64) (bool, error) {
	if app == store.DefaultApp || app == 0 {
		return s.cfg.RequireFriendship, nil
	}
	a, err := s.appByID(ctx, app)
	if err != nil {
		return false, err
	}
	if a.Settings.RequireFriendship != nil {
		return *a.Settings.RequireFriendship, nil
	}
	return s.cfg.RequireFriendship, nil
}

func (s *Service) maxGroupOf(ctx context.Context, app int64) int {
	if app != store.DefaultApp && app != 0 {
		if a, err := s.appByID(ctx, app); err == nil && a.Settings.MaxGroupSize > 0 {
			return a.Settings.MaxGroupSize
		}
	}
	return s.maxGroup()
}

// appChain is the app's login sources: its auth setting, in its order,
// else the server's --auth.
func (s *Service) appChain(a store.App) []AuthSource {
	if len(a.Settings.Auth) == 0 {
		return s.authChain()
	}
	var out []AuthSource
	for _, name := range a.Settings.Auth {
		if src, ok := s.serverSource(name); ok {
			out = append(out, src)
		}
	}
	return out
}

func (s *Service) serverSource(name string) (AuthSource, bool) {
	i := slices.IndexFunc(s.authChain(), func(a AuthSource) bool { return a.Name == name })
	if i < 0 {
		if name == auth.Local && len(s.cfg.Auth) == 0 {
			return AuthSource{Name: auth.Local}, true
		}
		return AuthSource{}, false
	}
	return s.authChain()[i], true
}
