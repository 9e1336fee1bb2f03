package clienttest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/magpie-im/magpie/proto/wire"
)

// file is an upload, kept in memory.
type file struct {
	owner, name, contentType string
	data                     []byte
}

// File returns an uploaded file's name, content type and bytes.
func (s *Server) File(id string) (name, contentType string, data []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[id]
	if f == nil {
		return "", "", nil, false
	}
	return f.name, f.contentType, append([]byte(nil), f.data...), true
}

// canSeeFileLocked: the uploader, or a member of a conversation with a
// message carrying the file.
func (s *Server) canSeeFileLocked(name, id string) bool {
	if f := s.files[id]; f == nil {
		return false
	} else if f.owner == name {
		return true
	}
	for _, cv := range s.convs {
		if !cv.has(name) {
			continue
		}
		for _, m := range cv.msgs {
			if m.GetFile().GetId() == id {
				return true
			}
		}
	}
	return false
}

func pair(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "/" + b
}

func (s *Server) socialRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/files", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		part, hdr, err := r.FormFile("file")
		if err != nil {
			writeErr(w, http.StatusBadRequest, wire.CodeBadRequest)
			return
		}
		defer part.Close()
		data, err := io.ReadAll(part)
		if err != nil {
			writeErr(w, http.StatusBadRequest, wire.CodeBadRequest)
			return
		}
		f := &file{owner: name, name: hdr.Filename, contentType: hdr.Header.Get("Content-Type"), data: data}
		id := "f_" + randomID()
		s.mu.Lock()
		s.files[id] = f
		s.mu.Unlock()
		writeJSON(w, http.StatusCreated, map[string]any{"id": id, "name": f.name, "content_type": f.contentType, "size": len(data)})
	}))
	mux.HandleFunc("GET /v1/files/{id}", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		f, ok := s.files[r.PathValue("id")], s.canSeeFileLocked(name, r.PathValue("id"))
		s.mu.Unlock()
		if !ok {
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
			return
		}
		w.Header().Set("Content-Type", f.contentType)
		w.Header().Set("Content-Disposition", `attachment; filename="`+f.name+`"`)
		w.Write(f.data)
	}))
	mux.HandleFunc("GET /v1/friends", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		lists := map[string][]map[string]any{"friends": {}, "incoming": {}, "outgoing": {}, "blocked": {}}
		add := func(list, who string) {
			lists[list] = append(lists[list], map[string]any{"user_id": s.users[who].id, "username": who, "since": 0})
		}
		for k := range s.friends {
			if a, b, _ := strings.Cut(k, "/"); a == name {
				add("friends", b)
			} else if b == name {
				add("friends", a)
			}
		}
		for k := range s.requests {
			if from, to, _ := strings.Cut(k, "/"); to == name {
				add("incoming", from)
			} else if from == name {
				add("outgoing", to)
			}
		}
		for k := range s.blocks {
			if blocker, blocked, _ := strings.Cut(k, "/"); blocker == name {
				add("blocked", blocked)
			}
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, lists)
	}))
	mux.HandleFunc("POST /v1/friends/requests", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		var in struct {
			Username string `json:"username"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		s.mu.Lock()
		defer s.mu.Unlock()
		switch {
		case s.users[in.Username] == nil:
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
		case s.requests[in.Username+"/"+name]:
			delete(s.requests, in.Username+"/"+name)
			s.friends[pair(name, in.Username)] = true
			writeJSON(w, http.StatusCreated, map[string]string{"status": "friends"})
		default:
			s.requests[name+"/"+in.Username] = true
			writeJSON(w, http.StatusCreated, map[string]string{"status": "requested"})
		}
	}))
	mux.HandleFunc("POST /v1/friends/requests/{username}/{verb}", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		from, verb := r.PathValue("username"), r.PathValue("verb")
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.requests[from+"/"+name] || (verb != "accept" && verb != "decline") {
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
			return
		}
		delete(s.requests, from+"/"+name)
		if verb == "decline" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		s.friends[pair(name, from)] = true
		writeJSON(w, http.StatusOK, map[string]string{"status": "friends"})
	}))
	mux.HandleFunc("DELETE /v1/friends/{username}", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		delete(s.friends, pair(name, r.PathValue("username")))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("POST /v1/blocks", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		var in struct {
			Username string `json:"username"`
		}
		json.NewDecoder(r.Body).Decode(&in)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.users[in.Username] == nil {
			writeErr(w, http.StatusNotFound, wire.CodeNotFound)
			return
		}
		s.blocks[name+"/"+in.Username] = true
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("DELETE /v1/blocks/{username}", s.authed(func(w http.ResponseWriter, r *http.Request, name string) {
		s.mu.Lock()
		delete(s.blocks, name+"/"+r.PathValue("username"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
}
