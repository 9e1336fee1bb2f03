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
	mux.HandleFunc("POST /v1/admin/users/import", h.importUsers)
}

// UseAdmin enables the signed admin API if v holds any key.
func (h *Handler) UseAdmin(v *push.Verifier) {
	if v.Enabled() {
		h.ext.admin.Store(v)
	}
}

// adminBody reads and verifies a signed admin request (signed like the
// push API, with --admin-keys).
func (h *Handler) adminBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	v := h.ext.admin.Load()
	if v == nil {
		h.fail(w, r, errAdminDisabled)
		return nil, false
	}
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		h.fail(w, r, errAdminQuery)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxAdminBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, &logic.Error{Kind: logic.KindTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", MaxAdminBody), Err: logic.ErrBadRequest})
		} else {
			h.fail(w, r, readError(err))
		}
		return nil, false
	}
	if _, err := v.Verify(r.Method, r.URL.Path, r.Header, body); err != nil {
		if errors.Is(err, push.ErrNonceCacheFull) {
			h.fail(w, r, signatureError(err))
		} else {
			h.fail(w, r, &logic.Error{Kind: logic.KindUnauthenticated, Msg: "admin signature: " + err.Error(), Err: logic.ErrUnauthenticated})
		}
		return nil, false
	}
	if err := jsonContentType(r.Header.Get("Content-Type")); err != nil {
		h.fail(w, r, err)
		return nil, false
	}
	return body, true
}

type importUserJSON struct {
	Username     string `json:"username"`
	PasswordHash string `json:"password_hash"`
	AuthSource   string `json:"auth_source"`
	DisplayName  string `json:"display_name"`
	Email        string `json:"email"`
}

// importUsers is POST /v1/admin/users/import.
func (h *Handler) importUsers(w http.ResponseWriter, r *http.Request) {
	body, ok := h.adminBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Users []importUserJSON `json:"users"`
	}
	if err := decodeBody(body, &req, true); err != nil {
		h.fail(w, r, err)
		return
	}
	users := make([]logic.ImportUser, len(req.Users))
	for i, u := range req.Users {
		users[i] = logic.ImportUser{Username: u.Username, PasswordHash: u.PasswordHash, AuthSource: u.AuthSource, DisplayName: u.DisplayName, Email: u.Email}
	}
	res, err := h.svc.ImportUsers(r.Context(), users)
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
