package api

import (
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
)

// Friend and block routes (docs/api.md, "Friends and blocks").

func (h *Handler) registerSocial(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/friends", h.auth(h.friends))
	mux.HandleFunc("POST /v1/friends/requests", h.auth(h.requestFriend))
	mux.HandleFunc("POST /v1/friends/requests/{username}/accept", h.auth(h.acceptFriend))
	mux.HandleFunc("POST /v1/friends/requests/{username}/decline", h.auth(h.declineFriend))
	mux.HandleFunc("DELETE /v1/friends/{username}", h.auth(h.removeFriend))
	mux.HandleFunc("POST /v1/blocks", h.auth(h.block))
	mux.HandleFunc("DELETE /v1/blocks/{username}", h.auth(h.unblock))
}

type contactJSON struct {
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
	Since    int64  `json:"since"`
}

func contactsOut(cs []store.Contact) []contactJSON {
	out := make([]contactJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, contactJSON{c.UserID, c.Username, c.Since.UnixMilli()})
	}
	return out
}

func (h *Handler) friends(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	c, err := h.svc.Contacts(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"friends": contactsOut(c.Friends), "incoming": contactsOut(c.Incoming),
		"outgoing": contactsOut(c.Outgoing), "blocked": contactsOut(c.Blocked),
	})
}

// usernameBody reads {"username": "..."}.
func usernameBody(w http.ResponseWriter, r *http.Request) (string, error) {
	var req struct {
		Username string `json:"username"`
	}
	err := decode(w, r, &req)
	return req.Username, err
}

func (h *Handler) requestFriend(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	name, err := usernameBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.svc.RequestFriend(r.Context(), id, name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"status": st})
}

func (h *Handler) acceptFriend(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	if err := h.svc.AcceptFriend(r.Context(), id, r.PathValue("username")); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": store.FriendsNow})
}

func (h *Handler) declineFriend(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.DeclineFriend(r.Context(), id, r.PathValue("username")))
}

func (h *Handler) removeFriend(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.RemoveFriend(r.Context(), id, r.PathValue("username")))
}

func (h *Handler) block(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	name, err := usernameBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.noContent(w, r, h.svc.Block(r.Context(), id, name))
}

func (h *Handler) unblock(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.Unblock(r.Context(), id, r.PathValue("username")))
}
