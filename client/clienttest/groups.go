package clienttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// createGroupLocked makes a group and stores its "created" event.
func (s *Server) createGroupLocked(owner, name, policy string, members []string) (*conv, *magpiepb.Message) {
	s.nextGroup++
	cv := newConv(fmt.Sprintf("g_%d", s.nextGroup), owner)
	cv.name = name
	cv.roles[owner] = "owner"
	if policy != "" {
		cv.policy = policy
	}
	for _, m := range members {
		if !cv.has(m) && s.users[m] != nil {
			cv.members = append(cv.members, m)
			cv.roles[m] = "member"
		}
	}
	s.convs[cv.id] = cv
	return cv, s.eventLocked(cv, owner, "created", cv.members[1:], "")
}

// eventLocked stores a group event in cv's stream.
func (s *Server) eventLocked(cv *conv, actor, typ string, users []string, detail string) *magpiepb.Message {
	ev := &magpiepb.GroupEvent{Type: typ, ActorId: s.users[actor].id, Actor: actor, Usernames: users, Detail: detail}
	for _, u := range users {
		ev.UserIds = append(ev.UserIds, s.users[u].id)
	}
	m, _ := s.appendLocked(cv, &magpiepb.Message{Sender: actor, Kind: magpiepb.MessageKind_MESSAGE_KIND_EVENT, Event: ev})
	return m
}

// pushTo sends a group message to every connection of the users.
func (s *Server) pushTo(users []string, m *magpiepb.Message) {
	s.mu.Lock()
	drop := s.dropPush
	s.mu.Unlock()
	for _, name := range users {
		for _, c := range s.connsOf(name, nil) {
			if drop == nil || !drop(name, m) {
				c.send(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: m}})
			}
		}
	}
}

func (s *Server) groupJSONLocked(cv *conv, withMembers bool) map[string]any {
	out := map[string]any{"id": cv.id, "name": cv.name, "owner": cv.members[0], "join_policy": cv.policy,
		"muted_until": 0, "member_count": len(cv.members), "created_at": cv.createdAt}
	for _, m := range cv.members {
		if cv.roles[m] == "owner" {
			out["owner"] = m
		}
	}
	if withMembers {
		var ms []map[string]any
		for _, m := range cv.members {
			ms = append(ms, map[string]any{"user_id": s.users[m].id, "username": m, "role": cv.roles[m],
				"muted_until": 0, "joined_at": cv.createdAt})
		}
		out["members"] = ms
	}
	return out
}

// groupOp runs f on the group of the request with s.mu held; f returns the
// status and body to answer with (nil body: no content) and the stored
// events, which are pushed to the members after the lock is released.
func (s *Server) groupOp(f func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string)) http.HandlerFunc {
	return s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		cv := s.convs[r.PathValue("id")]
		if cv == nil || !cv.group() {
			s.mu.Unlock()
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
			return
		}
		status, body, events, extra := f(r, name, cv)
		to := append(slices.Clone(cv.members), extra...)
		s.mu.Unlock()
		for _, m := range events {
			s.pushTo(to, m)
		}
		switch b := body.(type) {
		case wire.Code:
			writeErr(w, status, b)
		case nil:
			w.WriteHeader(status)
		default:
			writeJSON(w, status, body)
		}
	})
}

func (s *Server) groupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/groups", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		var in struct {
			Name       string   `json:"name"`
			Members    []string `json:"members"`
			JoinPolicy string   `json:"join_policy"`
		}
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.Name == "" {
			writeErr(w, http.StatusBadRequest, wire.CodeBadRequest)
			return
		}
		s.mu.Lock()
		cv, ev := s.createGroupLocked(name, in.Name, in.JoinPolicy, in.Members)
		out, members := s.groupJSONLocked(cv, true), slices.Clone(cv.members)
		s.mu.Unlock()
		s.pushTo(members, ev)
		writeJSON(w, http.StatusCreated, out)
	}))
	mux.HandleFunc("GET /v1/groups", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		list := []map[string]any{}
		for _, id := range sortedConvs(s.convs) {
			if cv := s.convs[id]; cv.group() && cv.has(name) {
				list = append(list, s.groupJSONLocked(cv, false))
			}
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"groups": list})
	}))
	mux.HandleFunc("GET /v1/groups/{id}", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		if !cv.has(name) && cv.policy != "open" {
			return http.StatusForbidden, wire.CodeNotMember, nil, nil
		}
		return http.StatusOK, s.groupJSONLocked(cv, cv.has(name)), nil, nil
	}))
	mux.HandleFunc("POST /v1/groups/{id}/members", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		var in struct {
			Usernames []string `json:"usernames"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		if !cv.has(name) {
			return http.StatusForbidden, wire.CodeNotMember, nil, nil
		}
		var added []string
		for _, u := range in.Usernames {
			if s.users[u] == nil {
				return http.StatusNotFound, wire.CodeNotFound, nil, nil
			}
			if !cv.has(u) {
				cv.members, cv.roles[u] = append(cv.members, u), "member"
				added = append(added, u)
			}
		}
		ev := s.eventLocked(cv, name, "added", added, "")
		return http.StatusOK, s.groupJSONLocked(cv, true), []*magpiepb.Message{ev}, nil
	}))
	mux.HandleFunc("POST /v1/groups/{id}/join", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		if cv.policy != "open" {
			return http.StatusForbidden, wire.CodeForbidden, nil, nil
		}
		if !cv.has(name) {
			cv.members, cv.roles[name] = append(cv.members, name), "member"
		}
		ev := s.eventLocked(cv, name, "joined", []string{name}, "")
		return http.StatusOK, s.groupJSONLocked(cv, true), []*magpiepb.Message{ev}, nil
	}))
	remove := func(cv *conv, actor, who, typ string) (int, any, []*magpiepb.Message, []string) {
		switch {
		case !cv.has(who):
			return http.StatusNotFound, wire.CodeNotFound, nil, nil
		case cv.roles[who] == "owner" && typ == "left":
			return http.StatusConflict, wire.CodeConflict, nil, nil
		case cv.roles[who] == "owner" || (actor != who && cv.roles[actor] != "owner" && cv.roles[actor] != "admin"):
			return http.StatusForbidden, wire.CodeForbidden, nil, nil
		}
		ev := s.eventLocked(cv, actor, typ, []string{who}, "")
		cv.members = slices.DeleteFunc(cv.members, func(m string) bool { return m == who })
		delete(cv.roles, who)
		return http.StatusNoContent, nil, []*magpiepb.Message{ev}, []string{who}
	}
	mux.HandleFunc("POST /v1/groups/{id}/leave", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		return remove(cv, name, name, "left")
	}))
	mux.HandleFunc("DELETE /v1/groups/{id}/members/{username}", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		return remove(cv, name, r.PathValue("username"), "removed")
	}))
	mux.HandleFunc("PUT /v1/groups/{id}/members/{username}/role", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		var in struct {
			Role string `json:"role"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		who := r.PathValue("username")
		if cv.roles[name] != "owner" || who == name || !cv.has(who) {
			return http.StatusForbidden, wire.CodeForbidden, nil, nil
		}
		cv.roles[who] = in.Role
		return http.StatusNoContent, nil, []*magpiepb.Message{s.eventLocked(cv, name, "role", []string{who}, in.Role)}, nil
	}))
	mux.HandleFunc("POST /v1/groups/{id}/owner", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		var in struct {
			Username string `json:"username"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		if cv.roles[name] != "owner" || !cv.has(in.Username) {
			return http.StatusForbidden, wire.CodeForbidden, nil, nil
		}
		cv.roles[name], cv.roles[in.Username] = "admin", "owner"
		return http.StatusNoContent, nil, []*magpiepb.Message{s.eventLocked(cv, name, "owner", []string{in.Username}, "")}, nil
	}))
	mux.HandleFunc("PATCH /v1/groups/{id}", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		var in struct {
			Name       *string `json:"name"`
			JoinPolicy *string `json:"join_policy"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		if cv.roles[name] != "owner" && cv.roles[name] != "admin" {
			return http.StatusForbidden, wire.CodeForbidden, nil, nil
		}
		var events []*magpiepb.Message
		if in.Name != nil {
			cv.name = *in.Name
			events = append(events, s.eventLocked(cv, name, "updated", nil, "name="+*in.Name))
		}
		if in.JoinPolicy != nil {
			cv.policy = *in.JoinPolicy
		}
		return http.StatusOK, s.groupJSONLocked(cv, true), events, nil
	}))
	mux.HandleFunc("PUT /v1/groups/{id}/members/{username}/mute", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		var in struct {
			Until int64 `json:"until"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		who := r.PathValue("username")
		if (cv.roles[name] != "owner" && cv.roles[name] != "admin") || !cv.has(who) {
			return http.StatusForbidden, wire.CodeForbidden, nil, nil
		}
		typ := "muted"
		if in.Until == 0 {
			typ = "unmuted"
		}
		return http.StatusNoContent, nil, []*magpiepb.Message{s.eventLocked(cv, name, typ, []string{who}, "")}, nil
	}))
	mux.HandleFunc("DELETE /v1/groups/{id}", s.groupOp(func(r *http.Request, name string, cv *conv) (int, any, []*magpiepb.Message, []string) {
		if cv.roles[name] != "owner" {
			return http.StatusForbidden, wire.CodeForbidden, nil, nil
		}
		return http.StatusNoContent, nil, []*magpiepb.Message{s.eventLocked(cv, name, "dissolved", nil, "")}, nil
	}))
	mux.HandleFunc("POST /v1/conversations/{id}/messages/{seq}/{verb}", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		var in struct {
			ClientMsgID string `json:"client_msg_id"`
			Text        string `json:"text"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		seq, _ := strconv.ParseUint(r.PathValue("seq"), 10, 64)
		kind := map[string]magpiepb.MessageKind{"recall": magpiepb.MessageKind_MESSAGE_KIND_RECALL,
			"edit": magpiepb.MessageKind_MESSAGE_KIND_EDIT}[r.PathValue("verb")]
		if kind == 0 {
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
			return
		}
		if in.ClientMsgID == "" {
			in.ClientMsgID = randomID()
		}
		env := s.handleChange(nil, name, r.PathValue("id"), seq, in.ClientMsgID, kind, in.Text)
		if e := env.GetError(); e != nil {
			code := wire.Code(e.GetCode())
			status := map[wire.Code]int{wire.CodeNotFound: 404, wire.CodeNotMember: 403, wire.CodeForbidden: 403}[code]
			writeErr(w, status, code)
			return
		}
		a := env.GetSendAck()
		writeJSON(w, http.StatusOK, map[string]any{"conversation_id": a.ConversationId, "seq": a.Seq,
			"client_msg_id": a.ClientMsgId, "sent_at": a.SentAt, "duplicate": a.Duplicate})
	}))
	mux.HandleFunc("GET /v1/conversations/{id}/messages/{seq}/reads", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		seq, _ := strconv.ParseUint(r.PathValue("seq"), 10, 64)
		s.mu.Lock()
		defer s.mu.Unlock()
		cv := s.convs[r.PathValue("id")]
		if cv == nil || !cv.has(name) {
			writeErr(w, http.StatusForbidden, wire.CodeNotMember)
			return
		}
		if seq == 0 || seq > uint64(len(cv.msgs)) {
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
			return
		}
		readers := []string{}
		for _, m := range cv.members {
			if m != cv.msgs[seq-1].Sender && cv.read[m] >= seq {
				readers = append(readers, m)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"seq": seq, "read_count": len(readers),
			"member_count": len(cv.members), "readers": readers})
	}))
}
