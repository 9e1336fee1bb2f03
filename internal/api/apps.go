package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
)

// keyLookupTimeout bounds the database read behind an app key's check.
const keyLookupTimeout = 2 * time.Second

// keyLookup finds the secret of an app's push or admin key for the
// verifier; a key that cannot be found (or read) is unknown.
func (h *Handler) keyLookup(admin bool) func(string) ([]byte, bool) {
	return func(keyID string) ([]byte, bool) {
		ctx, cancel := context.WithTimeout(context.Background(), keyLookupTimeout)
		defer cancel()
		_, secret, err := h.svc.AppForKey(ctx, keyID, admin)
		if err != nil && !errors.Is(err, logic.ErrNoSuchApp) {
			h.log.Warn("app key lookup failed", "key", keyID, "err", err)
		}
		return secret, err == nil
	}
}

var errOperatorOnly = &logic.Error{Kind: logic.KindForbidden, Msg: "only the server's --admin-keys manage apps or name another app", Err: store.ErrForbidden}

// adminApp is the app an admin call acts on: an app key's own app; an
// operator's named app, or the default.
func (h *Handler) adminApp(r *http.Request, c adminCaller, name string) (int64, error) {
	if name == "" {
		return c.app, nil
	}
	if !c.operator {
		return 0, errOperatorOnly
	}
	a, err := h.svc.AppByName(r.Context(), name)
	if err != nil {
		return 0, err
	}
	return a.ID, nil
}

func appJSON(a store.App, secrets bool) map[string]any {
	m := map[string]any{
		"id": a.ID, "name": a.Name, "created_at": a.CreatedAt.UTC().Format(time.RFC3339),
		"settings": a.Settings, "push_key_id": a.Keys.PushKeyID, "admin_key_id": a.Keys.AdminKeyID,
	}
	if a.Settings.WebhookSecret != "" && !secrets {
		st := a.Settings
		st.WebhookSecret = "(set)"
		m["settings"] = st
	}
	if secrets {
		m["push_secret"], m["admin_secret"] = a.Keys.PushSecret, a.Keys.AdminSecret
	}
	return m
}

// operatorBody is adminBody for the calls only operators make.
func (h *Handler) operatorBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, caller, ok := h.adminBody(w, r)
	if ok && !caller.operator {
		h.fail(w, r, errOperatorOnly)
		return nil, false
	}
	return body, ok
}

// listApps is GET /v1/admin/apps (secrets left out).
func (h *Handler) listApps(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.operatorBody(w, r); !ok {
		return
	}
	apps, err := h.svc.Apps(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]map[string]any, len(apps))
	for i, a := range apps {
		out[i] = appJSON(a, false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

// createApp is POST /v1/admin/apps: the answer holds the new keys'
// secrets, shown this once.
func (h *Handler) createApp(w http.ResponseWriter, r *http.Request) {
	body, ok := h.operatorBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Name     string            `json:"name"`
		Settings store.AppSettings `json:"settings"`
	}
	if err := decodeBody(body, &req, true); err != nil {
		h.fail(w, r, err)
		return
	}
	a, err := h.svc.CreateApp(r.Context(), req.Name, req.Settings)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, appJSON(a, true))
}

// rotateAppKeys is POST /v1/admin/apps/keys: new push and admin keys for
// the app; the old ones stop working.
func (h *Handler) rotateAppKeys(w http.ResponseWriter, r *http.Request) {
	body, ok := h.operatorBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeBody(body, &req, true); err != nil {
		h.fail(w, r, err)
		return
	}
	a, err := h.svc.RotateAppKeys(r.Context(), req.Name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, appJSON(a, true))
}

// setAppSettings is POST /v1/admin/apps/settings {"name","settings"}: the
// app's settings, replaced whole.
func (h *Handler) setAppSettings(w http.ResponseWriter, r *http.Request) {
	body, ok := h.operatorBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Name     string            `json:"name"`
		Settings store.AppSettings `json:"settings"`
	}
	if err := decodeBody(body, &req, true); err != nil {
		h.fail(w, r, err)
		return
	}
	a, err := h.svc.SetAppSettings(r.Context(), req.Name, req.Settings)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, appJSON(a, false))
}
