package api

import (
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
)

// Friend and block routes (docs/api.md, "Friends and blocks").

func (h *Handler) registerSocial(mux *http.ServeMux) {
	h.handle(mux, "GET /v1/friends", h.auth(h.friends))
	h.handle(mux, "POST /v1/friends/requests", h.auth(h.requestFriend))
	h.handle(mux, "POST /v1/friends/requests/{username}/accept", h.auth(h.acceptFriend))
	h.handle(mux, "POST /v1/friends/requests/{username}/decline", h.auth(h.declineFriend))
	h.handle(mux, "DELETE /v1/friends/{username}", h.auth(h.removeFriend))
	h.handle(mux, "PATCH /v1/friends/{username}", h.auth(h.setFriendInfo))
	h.handle(mux, "PUT /v1/friends/policy", h.auth(h.setFriendPolicy))
	h.handle(mux, "GET /v1/friends/sync", h.auth(h.syncFriends))
	h.handle(mux, "GET /v1/friends/groups", h.auth(h.friendGroups))
	h.handle(mux, "POST /v1/blocks", h.auth(h.block))
	h.handle(mux, "DELETE /v1/blocks/{username}", h.auth(h.unblock))
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

// friendJSON is a friend with what the user keeps for them.
type friendJSON struct {
	contactJSON
	Remark string `json:"remark"`
	Group  string `json:"group"`
	Seq    uint64 `json:"seq"`
}

func friendOut(c store.Contact) friendJSON {
	return friendJSON{contactJSON{c.UserID, c.Username, c.Since.UnixMilli()}, c.Remark, c.Group, c.Seq}
}

func friendsOut(cs []store.Contact) []friendJSON {
	out := make([]friendJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, friendOut(c))
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
		"friends": friendsOut(c.Friends), "incoming": contactsOut(c.Incoming),
		"outgoing": contactsOut(c.Outgoing), "blocked": contactsOut(c.Blocked),
		"policy": c.Policy, "seq": c.Seq,
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

func (h *Handler) setFriendInfo(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Remark *string `json:"remark"`
		Group  *string `json:"group"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.svc.SetFriendInfo(r.Context(), id, r.PathValue("username"), req.Remark, req.Group)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, friendOut(c))
}

func (h *Handler) setFriendPolicy(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Policy string `json:"policy"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.svc.SetFriendPolicy(r.Context(), id, req.Policy); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"policy": req.Policy})
}

// syncFriends is GET /v1/friends/sync?since=&limit=.
func (h *Handler) syncFriends(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	since, err := queryUint(r, "since")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	limit, err := queryUint(r, "limit")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sync, err := h.svc.SyncFriends(r.Context(), id, since, int(min(limit, logic.MaxFriendSyncLimit+1)))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	type change struct {
		friendJSON
		Removed bool `json:"removed,omitempty"`
	}
	out := make([]change, 0, len(sync.Changes))
	for _, c := range sync.Changes {
		ch := change{friendJSON: friendOut(c.Contact), Removed: c.Removed}
		if c.Removed {
			ch.Since = 0
		}
		out = append(out, ch)
	}
	writeJSON(w, http.StatusOK, map[string]any{"changes": out, "seq": sync.Seq, "more": sync.More})
}

func (h *Handler) friendGroups(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	groups, err := h.svc.FriendGroups(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	type groupJSON struct {
		Name    string       `json:"name"`
		Friends []friendJSON `json:"friends"`
	}
	out := make([]groupJSON, 0, len(groups))
	for _, g := range groups {
		out = append(out, groupJSON{g.Name, friendsOut(g.Friends)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out})
}
