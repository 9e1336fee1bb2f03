package clienttest

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/magpie-im/magpie/proto/wire"
)

func writeErr(w http.ResponseWriter, status int, code wire.Code) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code.String(), "message": code.String()}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// authed wraps an HTTP handler that needs a Bearer token; it passes the
// user's name.
func (s *Server) authed(h func(w http.ResponseWriter, r *http.Request, name string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		name, ok := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		s.mu.Unlock()
		if !ok {
			writeErr(w, http.StatusUnauthorized, wire.CodeUnauthenticated)
			return
		}
		h(w, r, name)
	}
}

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/users", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Username, Password string }
		json.NewDecoder(r.Body).Decode(&in)
		s.mu.Lock()
		_, taken := s.users[in.Username]
		s.mu.Unlock()
		if taken {
			writeErr(w, http.StatusConflict, wire.CodeConflict)
			return
		}
		s.AddUser(in.Username, in.Password)
		s.mu.Lock()
		id := s.users[in.Username].id
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": id, "username": in.Username})
	})
	mux.HandleFunc("POST /v1/login", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ Username, Password, Device string }
		json.NewDecoder(r.Body).Decode(&in)
		s.mu.Lock()
		u := s.users[in.Username]
		if u == nil || u.password != in.Password {
			s.mu.Unlock()
			writeErr(w, http.StatusUnauthorized, wire.CodeInvalidCredential)
			return
		}
		tok := randomID()
		s.tokens[tok] = u.name
		s.logins++
		s.loginDevices = append(s.loginDevices, in.Device)
		gw := s.loginGateway
		if gw == "" {
			gw = s.ln.Addr().String()
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{
			"token": tok, "user_id": u.id, "username": u.name, "session_id": tok, "device": in.Device,
			"expires_at": "2999-01-01T00:00:00Z",
			"gateway": map[string]string{"id": "fake-" + gw, "tcp": gw,
				"ws": "ws://" + s.hs.Listener.Addr().String() + "/v1/ws"},
		})
	})
	mux.HandleFunc("GET /v1/gateway", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		s.routes++
		gw := s.loginGateway
		if gw == "" {
			gw = s.ln.Addr().String()
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"gateway": map[string]string{"id": "fake-" + gw, "tcp": gw,
			"ws": "ws://" + s.hs.Listener.Addr().String() + "/v1/ws"}})
	}))
	mux.HandleFunc("POST /v1/logout", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/conversations", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		list := []map[string]any{}
		for _, id := range sortedConvs(s.convs) {
			if cv := s.convs[id]; cv.has(name) {
				list = append(list, s.convJSONLocked(cv, name))
			}
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"conversations": list})
	}))
	mux.HandleFunc("PATCH /v1/conversations/{id}", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		var in struct{ Pinned, Muted *bool }
		json.NewDecoder(r.Body).Decode(&in)
		s.mu.Lock()
		cv := s.convs[r.PathValue("id")]
		if cv == nil || !cv.has(name) {
			s.mu.Unlock()
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
			return
		}
		f := cv.flags[name]
		if in.Pinned != nil {
			f[0] = *in.Pinned
		}
		if in.Muted != nil {
			f[1] = *in.Muted
		}
		cv.flags[name] = f
		out, st := s.convJSONLocked(cv, name), s.stateLocked(cv, name)
		s.mu.Unlock()
		s.PushConversation(name, st)
		writeJSON(w, http.StatusOK, out)
	}))
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	s.groupRoutes(mux)
	s.socialRoutes(mux)
	return mux
}

// convJSONLocked is cv as GET /v1/conversations lists it for name.
func (s *Server) convJSONLocked(cv *conv, name string) map[string]any {
	st := s.stateLocked(cv, name)
	out := map[string]any{"id": cv.id, "kind": st.Kind, "last_seq": st.LastSeq, "delivered_seq": st.DeliveredSeq,
		"read_seq": st.ReadSeq, "unread": st.Unread, "pinned": st.Pinned, "muted": st.Muted}
	if cv.group() {
		out["name"] = cv.name
	} else {
		out["peer"], out["peer_id"] = st.Peer, s.users[st.Peer].id
		out["peer_delivered_seq"], out["peer_read_seq"] = st.PeerDeliveredSeq, st.PeerReadSeq
	}
	if n := len(cv.msgs); n > 0 {
		m := cv.msgs[n-1]
		out["last_message"] = map[string]any{"conversation_id": cv.id, "seq": m.Seq, "sender_id": m.SenderId,
			"sender": m.Sender, "client_msg_id": m.ClientMsgId, "text": m.Text, "sent_at": m.SentAt, "kind": int(m.Kind)}
	}
	return out
}
