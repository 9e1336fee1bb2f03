package store

import (
	"context"
	"time"
)

// DefaultApp is the app every user belongs to unless another is named:
// a deployment with one app never names it, and existing databases
// migrate into it.
const DefaultApp int64 = 1

// DefaultAppName is DefaultApp's name.
const DefaultAppName = "default"

// Apps are the tenants of a deployment (issue 12): each has its own users
// and usernames, and everything else (conversations, groups, friends,
// files) is between users of one app.
type Apps interface {
	// CreateApp adds an app (Name, Settings, keys). ErrExists if the name
	// or a key id is taken.
	CreateApp(ctx context.Context, a App) (App, error)
	// AppList lists every app by id, the default first.
	AppList(ctx context.Context) ([]App, error)
	// SetAppKeys replaces an app's push and admin keys. ErrNotFound if
	// there is no such app; ErrExists if a key id is taken.
	SetAppKeys(ctx context.Context, appID int64, k AppKeys) error
	// SetAppSettings replaces an app's settings. ErrNotFound if there is
	// no such app.
	SetAppSettings(ctx context.Context, appID int64, s AppSettings) error
}

// App is one tenant.
type App struct {
	ID        int64
	Name      string
	CreatedAt time.Time
	Settings  AppSettings
	Keys      AppKeys
}

// AppKeys sign an app's calls to the push and admin APIs. The default
// app's keys are the server's --push-keys and --admin-keys; others get
// theirs from `magpie app create` or `magpie app keys --rotate`.
type AppKeys struct {
	PushKeyID   string
	PushSecret  string
	AdminKeyID  string
	AdminSecret string
}

// AppSettings override the server's flags for one app; a zero field
// keeps the flag's value. The default app has none: its settings are the
// flags. Stored as JSON, so adding one needs no migration.
type AppSettings struct {
	DevicePolicy      string   `json:"device_policy,omitempty"`      // unlimited, single, per-platform
	RequireFriendship *bool    `json:"require_friendship,omitempty"` // private messages between friends only
	MaxGroupSize      int      `json:"max_group_size,omitempty"`     // members per group
	Auth              []string `json:"auth,omitempty"`               // login sources, a subset of --auth, in order
	Hosts             []string `json:"hosts,omitempty"`              // host names whose register and login are this app's
	WebhookURLs       []string `json:"webhook_urls,omitempty"`       // where the app's events go
	WebhookSecret     string   `json:"webhook_secret,omitempty"`     // signs them and the veto calls
	BeforeSendURL     string   `json:"before_send_url,omitempty"`    // may veto each message
	BeforeAddURL      string   `json:"before_add_url,omitempty"`     // may veto each friend add and member add
}
