package api

import (
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
)

// Profiles (docs/api.md): my profile, and those of my contacts.

func (h *Handler) registerProfiles(mux *http.ServeMux) {
	h.handle(mux, "GET /v1/profile", h.auth(h.myProfile))
	h.handle(mux, "PATCH /v1/profile", h.auth(h.updateProfile))
	h.handle(mux, "GET /v1/users/{username}/profile", h.auth(h.userProfile))
}

func (h *Handler) myProfile(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	p, err := h.svc.MyProfile(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) updateProfile(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		DisplayName *string            `json:"display_name"`
		AvatarURL   *string            `json:"avatar_url"`
		Custom      *map[string]string `json:"custom"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := h.svc.UpdateProfile(r.Context(), id, logic.ProfileChange{DisplayName: req.DisplayName, AvatarURL: req.AvatarURL, Custom: req.Custom})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (h *Handler) userProfile(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	p, err := h.svc.ProfileOf(r.Context(), id, r.PathValue("username"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
