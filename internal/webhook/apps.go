package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
)

// Apps holds the event webhooks of the apps other than the default (their
// settings' webhook_urls and webhook_secret): one Hooks per app, started
// at the app's first event and started again, the old one draining in the
// background, when its settings change. Each app's events go to its own
// queues and URLs only. Apps is safe for concurrent use.
type Apps struct {
	base Config // tunables shared by every app's Hooks
	log  *slog.Logger

	mu       sync.Mutex
	byApp    map[int64]*appHooks
	closed   bool
	draining sync.WaitGroup // replaced hooks still delivering their queues
}

type appHooks struct {
	urls                  []string
	secret                string
	beforeSend, beforeAdd string
	hooks                 *Hooks // nil: the settings were refused (logged once)
}

// replacedDrain bounds how long a replaced app's Hooks delivers what it
// had queued.
const replacedDrain = 5 * time.Second

// NewApps makes an empty registry; base gives the queue, retry, client
// and veto timeout and fail-open settings (its URLs and secret are
// ignored: each app's come from its settings).
func NewApps(base Config, log *slog.Logger) *Apps {
	base.URLs, base.Secret, base.BeforeSendURL, base.BeforeAddURL = nil, nil, "", ""
	return &Apps{base: base, log: log, byApp: map[int64]*appHooks{}}
}

// For returns the hooks of app for its current settings, or nil when it
// has no webhook, before-send or before-add URL (or after Shutdown).
func (a *Apps) For(app int64, st store.AppSettings) logic.Hooks {
	urls, secret := st.WebhookURLs, st.WebhookSecret
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	cur := a.byApp[app]
	if cur != nil && slices.Equal(cur.urls, urls) && cur.secret == secret &&
		cur.beforeSend == st.BeforeSendURL && cur.beforeAdd == st.BeforeAddURL {
		if cur.hooks == nil {
			return nil
		}
		return cur.hooks
	}
	if cur != nil && cur.hooks != nil {
		old := cur.hooks
		a.draining.Add(1)
		go func() {
			defer a.draining.Done()
			ctx, cancel := context.WithTimeout(context.Background(), replacedDrain)
			defer cancel()
			_ = old.Shutdown(ctx)
		}()
	}
	delete(a.byApp, app)
	if len(urls) == 0 && st.BeforeSendURL == "" && st.BeforeAddURL == "" {
		return nil
	}
	cfg := a.base
	cfg.URLs, cfg.Secret = slices.Clone(urls), []byte(secret)
	cfg.BeforeSendURL, cfg.BeforeAddURL = st.BeforeSendURL, st.BeforeAddURL
	h, err := New(cfg, a.log)
	if err != nil {
		a.log.Warn("webhook: an app's webhook settings are refused; its events are not sent", "app", app, "err", err)
	}
	a.byApp[app] = &appHooks{urls: slices.Clone(urls), secret: secret, beforeSend: st.BeforeSendURL, beforeAdd: st.BeforeAddURL, hooks: h}
	if h == nil {
		return nil
	}
	return h
}

// Shutdown delivers what every app's hooks have queued (those replaced
// before too), within ctx; For returns nil afterwards.
func (a *Apps) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	a.closed = true
	var all []*Hooks
	for _, e := range a.byApp {
		if e.hooks != nil {
			all = append(all, e.hooks)
		}
	}
	a.mu.Unlock()
	var errs []error
	for _, h := range all {
		errs = append(errs, h.Shutdown(ctx))
	}
	done := make(chan struct{})
	go func() { a.draining.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("replaced app webhooks still delivering: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// Stats sums the stats of the apps' current hooks.
func (a *Apps) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	var st Stats
	for _, e := range a.byApp {
		if e.hooks != nil {
			s := e.hooks.Stats()
			st.Queued += s.Queued
			st.Dropped += s.Dropped
			st.Delivered += s.Delivered
			st.Failed += s.Failed
			st.Retries += s.Retries
		}
	}
	return st
}
