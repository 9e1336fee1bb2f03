package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/magpie-im/magpie/internal/api"
	"github.com/magpie-im/magpie/internal/files"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/internal/webhook"
)

// webhookDrain bounds how long shutdown waits for queued webhook events,
// so a dead endpoint cannot take the whole shutdown budget.
const webhookDrain = 5 * time.Second

// extensions are the logic role's optional parts: uploads, webhooks and
// the signed push API. Zero values mean "off".
type extensions struct {
	uploads *files.Uploads
	hooks   *webhook.Hooks // nil without --webhook-urls and --before-send-url
	apps    *webhook.Apps  // the other apps' event webhooks, from their settings
	push    *push.Verifier // holds no key without --push-keys
	admin   *push.Verifier // holds no key without --admin-keys
}

func (n *Node) newExtensions() (extensions, error) {
	var e extensions
	dir := n.cfg.FilesDir
	if dir == "" {
		dir = filepath.Join(n.cfg.Data, "files")
	}
	disk, err := files.NewDisk(dir)
	if err != nil {
		return e, err
	}
	if e.uploads, err = files.NewUploads(disk, n.cfg.FilesMaxSize, n.cfg.FilesTypes); err != nil {
		return e, err
	}
	if err := e.uploads.SetQuota(n.cfg.FilesQuota); err != nil {
		return e, err
	}
	e.push = push.NewVerifier(n.cfg.PushKeys, 0, nil)
	e.admin = push.NewVerifier(n.cfg.AdminKeys, 0, nil)
	e.apps = webhook.NewApps(webhook.Config{BeforeSendTimeout: n.cfg.BeforeSendTimeout, FailOpen: n.cfg.BeforeSendFailOpen}, n.log)
	urls := n.cfg.WebhookURLs
	if len(urls) > 0 || n.cfg.BeforeSendURL != "" || n.cfg.BeforeAddURL != "" {
		e.hooks, err = webhook.New(webhook.Config{
			URLs: urls, Secret: []byte(n.cfg.WebhookSecret), BeforeSendURL: n.cfg.BeforeSendURL, BeforeAddURL: n.cfg.BeforeAddURL,
			BeforeSendTimeout: n.cfg.BeforeSendTimeout, FailOpen: n.cfg.BeforeSendFailOpen,
		}, n.log)
		if err != nil {
			return e, err
		}
	}
	return e, nil
}

// logicHooks is the hooks for logic.Config: an untyped nil when there are
// none, so logic's nil check works.
func (e *extensions) logicHooks() logic.Hooks {
	if e.hooks == nil {
		return nil
	}
	return e.hooks
}

// appHooks is logic.Config.AppHooks.
func (e *extensions) appHooks() logic.AppHooks { return e.apps.For }

func (e *extensions) logicFiles() logic.Files {
	if e.uploads == nil {
		return nil
	}
	return e.uploads
}

// register switches the API's files and push routes on.
func (e *extensions) register(h *api.Handler) {
	if e.uploads != nil {
		h.UseFiles(e.uploads)
	}
	h.UsePush(e.push)
	h.UseAdmin(e.admin)
}

// shutdown delivers queued webhook events, within webhookDrain.
func (e *extensions) shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, webhookDrain)
	defer cancel()
	if e.apps != nil {
		if err := e.apps.Shutdown(ctx); err != nil {
			n := e.apps.Stats()
			return fmt.Errorf("apps' webhooks: %w (delivered %d, failed %d, dropped %d)", err, n.Delivered, n.Failed, n.Dropped)
		}
	}
	if e.hooks == nil {
		return nil
	}
	if err := e.hooks.Shutdown(ctx); err != nil {
		n := e.hooks.Stats()
		return fmt.Errorf("%w (delivered %d, failed %d, dropped %d)", err, n.Delivered, n.Failed, n.Dropped)
	}
	return nil
}
