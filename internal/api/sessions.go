package api

import (
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
)

// Sessions a user controls (docs/api.md "Sessions"): list them, end one,
// change the password (ending the others). POST /v1/logout?all=true is in
// api.go's logout.
func (h *Handler) registerSessions(mux *http.ServeMux) {
	h.handle(mux, "GET /v1/sessions", h.auth(h.sessions))
	h.handle(mux, "DELETE /v1/sessions/{id}", h.auth(h.endSession))
	h.handle(mux, "POST /v1/password", h.auth(h.changePassword))
}

// sessionJSON is one session; times are unix milliseconds, like a
// message's sent_at.
type sessionJSON struct {
	ID        string `json:"id"`
	Device    string `json:"device"`
	Platform  string `json:"platform"`
	CreatedAt int64  `json:"created_at"`
	LastSeen  int64  `json:"last_seen"`
	ExpiresAt int64  `json:"expires_at"`
	Online    bool   `json:"online"`
	Current   bool   `json:"current"`
}

func (h *Handler) sessions(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	list, err := h.svc.Sessions(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]sessionJSON, 0, len(list))
	for _, s := range list {
		out = append(out, sessionJSON{ID: s.ID, Device: s.Device, Platform: s.Platform, CreatedAt: s.CreatedAt.UnixMilli(),
			LastSeen: s.LastSeen.UnixMilli(), ExpiresAt: s.ExpiresAt.UnixMilli(), Online: s.Online, Current: s.Current})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func (h *Handler) endSession(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	if err := h.svc.EndSession(r.Context(), id, r.PathValue("id")); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) changePassword(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Old string `json:"old"`
		New string `json:"new"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.svc.ChangePassword(r.Context(), id, req.Old, req.New); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
