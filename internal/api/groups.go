package api

import (
	"net/http"
	"time"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
)

// Group routes (docs/api.md, "Groups"). Authorization is the logic
// role's and the store's; these handlers only translate.

func (h *Handler) registerGroups(mux *http.ServeMux) {
	h.handle(mux, "POST /v1/groups", h.auth(h.createGroup))
	h.handle(mux, "GET /v1/groups", h.auth(h.listGroups))
	h.handle(mux, "GET /v1/groups/{id}", h.auth(h.getGroup))
	h.handle(mux, "PATCH /v1/groups/{id}", h.auth(h.updateGroup))
	h.handle(mux, "DELETE /v1/groups/{id}", h.auth(h.dissolveGroup))
	h.handle(mux, "POST /v1/groups/{id}/members", h.auth(h.addMembers))
	h.handle(mux, "POST /v1/groups/{id}/join", h.auth(h.joinGroup))
	h.handle(mux, "POST /v1/groups/{id}/leave", h.auth(h.leaveGroup))
	h.handle(mux, "DELETE /v1/groups/{id}/members/{username}", h.auth(h.removeMember))
	h.handle(mux, "PUT /v1/groups/{id}/members/{username}/role", h.auth(h.setRole))
	h.handle(mux, "PUT /v1/groups/{id}/members/{username}/mute", h.auth(h.muteMember))
	h.handle(mux, "POST /v1/groups/{id}/owner", h.auth(h.transferOwner))
	h.handle(mux, "GET /v1/groups/{id}/requests", h.auth(h.joinRequests))
	h.handle(mux, "POST /v1/groups/{id}/requests/{username}/approve", h.auth(h.approveJoin))
	h.handle(mux, "POST /v1/groups/{id}/requests/{username}/reject", h.auth(h.rejectJoin))
	h.handle(mux, "GET /v1/groups/sync", h.auth(h.syncGroups))
}

type memberJSON struct {
	UserID     int64  `json:"user_id"`
	Username   string `json:"username"`
	Role       string `json:"role"`
	MutedUntil int64  `json:"muted_until"`
	JoinedAt   int64  `json:"joined_at"`
}

type groupJSON struct {
	ID          string        `json:"id"`
	Name        string        `json:"name"`
	Owner       string        `json:"owner"`
	JoinPolicy  string        `json:"join_policy"`
	MutedUntil  int64         `json:"muted_until"`
	MemberCount int           `json:"member_count"`
	CreatedAt   int64         `json:"created_at"`
	Dissolved   bool          `json:"dissolved,omitempty"`
	Intro       string        `json:"intro"`
	Notice      string        `json:"notice"`
	AvatarURL   string        `json:"avatar_url"`
	MaxMembers  int           `json:"max_members"`
	Version     uint64        `json:"version"`
	Members     *[]memberJSON `json:"members,omitempty"` // absent in lists and for non-members
}

// msOf is unix milliseconds, 0 for the zero time ("not muted").
func msOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func groupOut(g store.GroupInfo) groupJSON {
	out := groupJSON{ID: g.ID, Name: g.Name, Owner: g.Owner, JoinPolicy: string(g.JoinPolicy),
		MutedUntil: msOf(g.MutedUntil), MemberCount: g.MemberCount,
		CreatedAt: g.CreatedAt.UnixMilli(), Dissolved: g.Dissolved,
		Intro: g.Intro, Notice: g.Notice, AvatarURL: g.AvatarURL, MaxMembers: g.MaxMembers, Version: g.Version}
	if g.Members != nil {
		ms := make([]memberJSON, 0, len(g.Members))
		for _, m := range g.Members {
			ms = append(ms, memberJSON{m.UserID, m.Username, string(m.Role),
				msOf(m.MutedUntil), m.JoinedAt.UnixMilli()})
		}
		out.Members = &ms
	}
	return out
}

// groupReply writes a group, or the error.
func (h *Handler) groupReply(w http.ResponseWriter, r *http.Request, status int, g store.GroupInfo, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, status, groupOut(g))
}

// noContent writes 204, or the error.
func (h *Handler) noContent(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) createGroup(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Name       string   `json:"name"`
		Members    []string `json:"members"`
		JoinPolicy string   `json:"join_policy"`
		groupFieldsJSON
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	g, err := h.svc.CreateGroupWith(r.Context(), id, req.Name, req.Members, req.JoinPolicy, req.fields())
	h.groupReply(w, r, http.StatusCreated, g, err)
}

func (h *Handler) listGroups(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	gs, err := h.svc.Groups(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]groupJSON, 0, len(gs))
	for _, g := range gs {
		g.Members = nil
		out = append(out, groupOut(g))
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out})
}

func (h *Handler) getGroup(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	g, err := h.svc.Group(r.Context(), id, r.PathValue("id"))
	h.groupReply(w, r, http.StatusOK, g, err)
}

func (h *Handler) updateGroup(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Name       *string `json:"name"`
		JoinPolicy *string `json:"join_policy"`
		MutedUntil *int64  `json:"muted_until"`
		groupFieldsJSON
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	g, err := h.svc.UpdateGroup(r.Context(), id, r.PathValue("id"), logic.GroupUpdate{Name: req.Name, JoinPolicy: req.JoinPolicy,
		MutedUntil: req.MutedUntil, GroupFields: req.fields()})
	h.groupReply(w, r, http.StatusOK, g, err)
}

func (h *Handler) dissolveGroup(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.DissolveGroup(r.Context(), id, r.PathValue("id")))
}

func (h *Handler) addMembers(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Usernames []string `json:"usernames"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	g, err := h.svc.AddMembers(r.Context(), id, r.PathValue("id"), req.Usernames)
	h.groupReply(w, r, http.StatusOK, g, err)
}

func (h *Handler) joinGroup(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	g, requested, err := h.svc.JoinGroup(r.Context(), id, r.PathValue("id"))
	if err == nil && requested {
		writeJSON(w, http.StatusAccepted, map[string]any{"status": "requested"})
		return
	}
	h.groupReply(w, r, http.StatusOK, g, err)
}

// groupFieldsJSON are the profile fields of a create or update body.
type groupFieldsJSON struct {
	Intro      *string `json:"intro"`
	Notice     *string `json:"notice"`
	AvatarURL  *string `json:"avatar_url"`
	MaxMembers *int    `json:"max_members"`
}

func (f groupFieldsJSON) fields() logic.GroupFields {
	return logic.GroupFields{Intro: f.Intro, Notice: f.Notice, AvatarURL: f.AvatarURL, MaxMembers: f.MaxMembers}
}

func (h *Handler) joinRequests(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	reqs, err := h.svc.JoinRequests(r.Context(), id, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	type reqJSON struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		At       int64  `json:"at"`
	}
	out := make([]reqJSON, 0, len(reqs))
	for _, q := range reqs {
		out = append(out, reqJSON{q.UserID, q.Username, q.At.UnixMilli()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
}

func (h *Handler) approveJoin(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.AnswerJoin(r.Context(), id, r.PathValue("id"), r.PathValue("username"), true))
}

func (h *Handler) rejectJoin(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.AnswerJoin(r.Context(), id, r.PathValue("id"), r.PathValue("username"), false))
}

// syncGroups is GET /v1/groups/sync?since=&limit=.
func (h *Handler) syncGroups(w http.ResponseWriter, r *http.Request, id logic.Identity) {
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
	sync, err := h.svc.SyncGroups(r.Context(), id, since, int(min(limit, logic.MaxGroupSyncLimit+1)))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	type entry struct {
		groupJSON
		Left bool `json:"left,omitempty"`
	}
	out := make([]entry, 0, len(sync.Groups))
	for _, e := range sync.Groups {
		e.Group.Members = nil
		j := groupOut(e.Group)
		j.Version = e.Version
		out = append(out, entry{groupJSON: j, Left: e.Left})
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out, "seq": sync.Seq, "more": sync.More})
}

func (h *Handler) leaveGroup(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.LeaveGroup(r.Context(), id, r.PathValue("id")))
}

func (h *Handler) removeMember(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.noContent(w, r, h.svc.RemoveMember(r.Context(), id, r.PathValue("id"), r.PathValue("username")))
}

func (h *Handler) setRole(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Role string `json:"role"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.noContent(w, r, h.svc.SetRole(r.Context(), id, r.PathValue("id"), r.PathValue("username"), req.Role))
}

func (h *Handler) muteMember(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Until int64 `json:"until"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.noContent(w, r, h.svc.MuteMember(r.Context(), id, r.PathValue("id"), r.PathValue("username"), req.Until))
}

func (h *Handler) transferOwner(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Username string `json:"username"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	h.noContent(w, r, h.svc.TransferOwnership(r.Context(), id, r.PathValue("id"), req.Username))
}
