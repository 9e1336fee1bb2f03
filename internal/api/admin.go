package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/internal/store"
)

// MaxAdminBody is the largest admin API body: an import of MaxImport users
// with long hashes and profiles.
const MaxAdminBody = 4 << 20

var errAdminDisabled = &logic.Error{Kind: logic.KindNotFound, Msg: "admin API disabled", Err: store.ErrNotFound}

var errAdminQuery = badRequest("the admin API takes no query string (the signature does not cover one)")

func (h *Handler) registerAdmin(mux *http.ServeMux) {
	h.handle(mux, "POST /v1/admin/users/import", h.importUsers)
	h.handle(mux, "GET /v1/admin/apps", h.listApps)
	h.handle(mux, "POST /v1/admin/apps", h.createApp)
	h.handle(mux, "POST /v1/admin/apps/keys", h.rotateAppKeys)
	h.handle(mux, "POST /v1/admin/apps/settings", h.setAppSettings)
	h.registerAdminImports(mux) // adminimport.go
	h.registerAdminUsers(mux)   // adminusers.go
}

// UseAdmin enables the signed admin API: v's keys (--admin-keys) are the
// operator's, and the apps' admin keys are looked up (apps.go).
func (h *Handler) UseAdmin(v *push.Verifier) {
	v.SetLookup(h.keyLookup(true))
	h.ext.admin.Store(v)
}

// adminCaller is who signed an admin request: an operator (a key of
// --admin-keys, which acts on the default app or the one it names, and
// manages apps), or an app's admin key, which acts on its app only.
type adminCaller struct {
	operator bool
	app      int64
}

// adminTarget is the "app" field every admin request may carry: the app
// it acts on (see adminApp).
type adminTarget struct {
	App string `json:"app"`
}

func (t *adminTarget) appName() string { return t.App }

// adminRequest reads, verifies and strictly decodes a signed admin request
// into req (a struct embedding adminTarget) and returns the app it acts on.
// On false the answer has been written.
func (h *Handler) adminRequest(w http.ResponseWriter, r *http.Request, req interface{ appName() string }) (int64, bool) {
	body, caller, ok := h.adminBody(w, r)
	if !ok {
		return 0, false
	}
	if err := decodeBody(body, req, true); err != nil {
		h.fail(w, r, err)
		return 0, false
	}
	app, err := h.adminApp(r, caller, req.appName())
	if err != nil {
		h.fail(w, r, err)
		return 0, false
	}
	return app, true
}

// adminBody reads and verifies a signed admin request (signed like the
// push API, with --admin-keys or an app's admin key).
func (h *Handler) adminBody(w http.ResponseWriter, r *http.Request) ([]byte, adminCaller, bool) {
	v := h.ext.admin.Load()
	// On with --admin-keys, or with apps besides the default (their keys).
	if v == nil || !v.Enabled() && !h.svc.HasApps(r.Context()) {
		h.fail(w, r, errAdminDisabled)
		return nil, adminCaller{}, false
	}
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		h.fail(w, r, errAdminQuery)
		return nil, adminCaller{}, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, &logic.Error{Kind: logic.KindTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", MaxAdminBody), Err: logic.ErrBadRequest})
		} else {
			h.fail(w, r, readError(err))
		}
		return nil, adminCaller{}, false
	}
	keyID, err := v.Verify(r.Method, r.URL.Path, r.Header, body)
	if err != nil {
		if errors.Is(err, push.ErrNonceCacheFull) {
			h.fail(w, r, signatureError(err))
		} else {
			h.fail(w, r, &logic.Error{Kind: logic.KindUnauthenticated, Msg: "admin signature: " + err.Error(), Err: logic.ErrUnauthenticated})
		}
		return nil, adminCaller{}, false
	}
	caller := adminCaller{operator: true, app: store.DefaultApp}
	if !v.Static(keyID) {
		a, _, err := h.svc.AppForKey(r.Context(), keyID, true)
		if err != nil {
			h.fail(w, r, err)
			return nil, adminCaller{}, false
		}
		caller = adminCaller{app: a.ID}
	}
	if r.Method != http.MethodGet {
		if err := jsonContentType(r.Header.Get("Content-Type")); err != nil {
			h.fail(w, r, err)
			return nil, adminCaller{}, false
		}
	}
	return body, caller, true
}

type importUserJSON struct {
	Username     string            `json:"username"`
	PasswordHash string            `json:"password_hash"`
	AuthSource   string            `json:"auth_source"`
	DisplayName  string            `json:"display_name"`
	Email        string            `json:"email"`
	AvatarURL    string            `json:"avatar_url"`
	Custom       map[string]string `json:"custom"`
}

// importUsers is POST /v1/admin/users/import.
func (h *Handler) importUsers(w http.ResponseWriter, r *http.Request) {
	var req struct {
		adminTarget
		Users []importUserJSON `json:"users"`
	}
	app, ok := h.adminRequest(w, r, &req)
	if !ok {
		return
	}
	users := make([]logic.ImportUser, len(req.Users))
	for i, u := range req.Users {
		users[i] = logic.ImportUser{Username: u.Username, PasswordHash: u.PasswordHash, AuthSource: u.AuthSource, DisplayName: u.DisplayName, Email: u.Email,
			AvatarURL: u.AvatarURL, Custom: u.Custom}
	}
	res, err := h.svc.ImportUsers(r.Context(), app, users)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	counts := map[string]int{}
	results := make([]map[string]any, len(res))
	for i, u := range res {
		if u.Err != nil {
			counts["failed"]++
			results[i] = map[string]any{"username": u.Username, "error": map[string]string{
				"code": logic.Code(u.Err).String(), "message": logic.Message(u.Err),
			}}
			continue
		}
		counts[u.Status]++
		results[i] = map[string]any{"username": u.Username, "status": u.Status, "user_id": u.UserID}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"created": counts[logic.ImportCreated], "existing": counts[logic.ImportExists], "failed": counts["failed"],
		"results": results,
	})
}
