package api

import (
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
)

// The imports of friendships and groups (docs/api.md, Admin API): signed
// like the user import, per app, answered entry by entry.

func (h *Handler) registerAdminImports(mux *http.ServeMux) {
	h.handle(mux, "POST /v1/admin/friendships/import", h.importFriendships)
	h.handle(mux, "POST /v1/admin/groups/import", h.importGroups)
}

// importFriendships is POST /v1/admin/friendships/import.
func (h *Handler) importFriendships(w http.ResponseWriter, r *http.Request) {
	var req struct {
		adminTarget
		Friendships []struct {
			User   string `json:"user"`
			Friend string `json:"friend"`
		} `json:"friendships"`
	}
	app, ok := h.adminRequest(w, r, &req)
	if !ok {
		return
	}
	pairs := make([]logic.ImportFriendship, len(req.Friendships))
	for i, f := range req.Friendships {
		pairs[i] = logic.ImportFriendship{User: f.User, Friend: f.Friend}
	}
	res, err := h.svc.ImportFriendships(r.Context(), app, pairs)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeImport(w, res, func(i int, m map[string]any) { m["user"], m["friend"] = pairs[i].User, pairs[i].Friend })
}

type importMemberJSON struct {
	Username string `json:"username"`
	Role     string `json:"role"`
}

// importGroups is POST /v1/admin/groups/import.
func (h *Handler) importGroups(w http.ResponseWriter, r *http.Request) {
	var req struct {
		adminTarget
		Groups []struct {
			ID         string             `json:"id"`
			Name       string             `json:"name"`
			JoinPolicy string             `json:"join_policy"`
			Owner      string             `json:"owner"`
			Members    []importMemberJSON `json:"members"`
		} `json:"groups"`
	}
	app, ok := h.adminRequest(w, r, &req)
	if !ok {
		return
	}
	groups := make([]logic.ImportGroup, len(req.Groups))
	for i, g := range req.Groups {
		groups[i] = logic.ImportGroup{ID: g.ID, Name: g.Name, JoinPolicy: g.JoinPolicy, Owner: g.Owner}
		for _, m := range g.Members {
			groups[i].Members = append(groups[i].Members, logic.ImportGroupMember{Username: m.Username, Role: m.Role})
		}
	}
	res, err := h.svc.ImportGroups(r.Context(), app, groups)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeImport(w, res, func(i int, m map[string]any) {
		m["id"] = groups[i].ID
		if res[i].GroupID != "" {
			m["group_id"] = res[i].GroupID
		}
	})
}

// writeImport answers an import: the counts, and each entry's status or
// error lined up with the request, named by name.
func writeImport(w http.ResponseWriter, res []logic.ImportEntry, name func(int, map[string]any)) {
	counts := map[string]int{}
	results := make([]map[string]any, len(res))
	for i, e := range res {
		m := map[string]any{}
		name(i, m)
		if e.Err != nil {
			counts["failed"]++
			m["error"] = map[string]string{"code": logic.Code(e.Err).String(), "message": logic.Message(e.Err)}
		} else {
			counts[e.Status]++
			m["status"] = e.Status
		}
		results[i] = m
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"created": counts[logic.ImportCreated], "existing": counts[logic.ImportExists], "failed": counts["failed"],
		"results": results,
	})
}
