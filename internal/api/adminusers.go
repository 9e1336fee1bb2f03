package api

import (
	"net/http"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// Moderation in the admin API (docs/api.md): disable, delete and list an
// app's users, remove any message. Signed like every admin call; the
// parameters are in the body (the signature covers no query string).

func (h *Handler) registerAdminUsers(mux *http.ServeMux) {
	h.handle(mux, "POST /v1/admin/users/disable", h.disableUser)
	h.handle(mux, "POST /v1/admin/users/delete", h.deleteUser)
	h.handle(mux, "POST /v1/admin/users/list", h.listUsers)
	h.handle(mux, "POST /v1/admin/messages/remove", h.removeMessage)
}

// adminUserJSON is a user as the admin API shows it.
func adminUserJSON(u store.User) map[string]any {
	m := map[string]any{
		"user_id": u.ID, "username": u.Username, "auth_source": u.AuthSource, "display_name": u.DisplayName,
		"email": u.Email, "created_at": u.CreatedAt.UTC().Format(time.RFC3339), "disabled": !u.DisabledAt.IsZero(),
	}
	if !u.DeletedAt.IsZero() {
		m["deleted"] = true
	}
	return m
}

// disableUser is POST /v1/admin/users/disable {"username","disabled"?}.
func (h *Handler) disableUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		adminTarget
		Username string `json:"username"`
		Disabled *bool  `json:"disabled"`
	}
	app, ok := h.adminRequest(w, r, &req)
	if !ok {
		return
	}
	disabled := req.Disabled == nil || *req.Disabled
	u, err := h.svc.SetUserDisabled(r.Context(), app, req.Username, disabled)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminUserJSON(u))
}

// deleteUser is POST /v1/admin/users/delete {"username","erase_messages"?}.
func (h *Handler) deleteUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		adminTarget
		Username      string `json:"username"`
		EraseMessages bool   `json:"erase_messages"`
	}
	app, ok := h.adminRequest(w, r, &req)
	if !ok {
		return
	}
	u, err := h.svc.DeleteUser(r.Context(), app, req.Username, req.EraseMessages)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user_id": u.ID, "username": u.Username, "deleted": true, "messages_erased": req.EraseMessages})
}

// listUsers is POST /v1/admin/users/list {"query"?,"cursor"?,"limit"?}.
func (h *Handler) listUsers(w http.ResponseWriter, r *http.Request) {
	var req struct {
		adminTarget
		Query  string `json:"query"`
		Cursor string `json:"cursor"`
		Limit  int    `json:"limit"`
	}
	app, ok := h.adminRequest(w, r, &req)
	if !ok {
		return
	}
	users, next, err := h.svc.ListUsers(r.Context(), app, req.Query, req.Cursor, req.Limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]map[string]any, len(users))
	for i, u := range users {
		out[i] = adminUserJSON(u)
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out, "next_cursor": next})
}

// removeMessage is POST /v1/admin/messages/remove {"conversation_id","seq"}.
func (h *Handler) removeMessage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		adminTarget
		ConversationID string `json:"conversation_id"`
		Seq            uint64 `json:"seq"`
	}
	app, ok := h.adminRequest(w, r, &req)
	if !ok {
		return
	}
	recall, err := h.svc.RemoveMessage(r.Context(), app, req.ConversationID, req.Seq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"removed": messageOut(recall)})
}
