package api

import (
	"net/http"
	"strconv"

	"github.com/magpie-im/magpie/internal/logic"
)

// Routes that act on one conversation or one message of it: recall, edit,
// who read it, and the user's flags (docs/api.md, "Conversations").

func (h *Handler) registerChanges(mux *http.ServeMux) {
	h.handle(mux, "POST /v1/conversations/{id}/messages/{seq}/recall", h.auth(h.recall))
	h.handle(mux, "POST /v1/conversations/{id}/messages/{seq}/edit", h.auth(h.edit))
	h.handle(mux, "GET /v1/conversations/{id}/messages/{seq}/reads", h.auth(h.reads))
	h.handle(mux, "PATCH /v1/conversations/{id}", h.auth(h.setFlags))
	h.handle(mux, "DELETE /v1/conversations/{id}", h.auth(h.hideConversation))
	h.handle(mux, "GET /v1/messages/scheduled", h.auth(h.scheduled))
	h.handle(mux, "DELETE /v1/messages/scheduled/{id}", h.auth(h.cancelScheduled))
}

// scheduled lists the caller's pending scheduled messages.
func (h *Handler) scheduled(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	list, err := h.svc.ScheduledMessages(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"scheduled": list})
}

func (h *Handler) cancelScheduled(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	n, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || n <= 0 {
		h.fail(w, r, badRequest("a scheduled message id is a positive integer"))
		return
	}
	if err := h.svc.CancelScheduled(r.Context(), id, n); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// hideConversation is DELETE /v1/conversations/{id}[?clear=true]: out of
// the caller's list until a new message; clear also clears their history.
func (h *Handler) hideConversation(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var clear bool
	switch r.URL.Query().Get("clear") {
	case "", "false", "0":
	case "true", "1":
		clear = true
	default:
		h.fail(w, r, badRequest("clear must be true or false"))
		return
	}
	seq, err := h.svc.HideConversation(r.Context(), id, r.PathValue("id"), clear)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := map[string]any{"conversation_id": r.PathValue("id"), "hidden_seq": seq}
	if clear {
		out["cleared_seq"] = seq
	}
	writeJSON(w, http.StatusOK, out)
}

func pathSeq(r *http.Request) (uint64, error) {
	n, err := strconv.ParseUint(r.PathValue("seq"), 10, 63)
	if err != nil || n == 0 {
		return 0, badRequest("seq must be a positive integer")
	}
	return n, nil
}

func (h *Handler) recall(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.change(w, r, id, false)
}

func (h *Handler) edit(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	h.change(w, r, id, true)
}

func (h *Handler) change(w http.ResponseWriter, r *http.Request, id logic.Identity, edit bool) {
	seq, err := pathSeq(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var req struct {
		Text        string `json:"text"`
		ClientMsgID string `json:"client_msg_id"`
	}
	// A recall needs no body; an empty one is fine.
	if r.ContentLength != 0 || edit {
		if err := decode(w, r, &req); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	cr := logic.ChangeRequest{ConversationID: r.PathValue("id"), Seq: seq, Text: req.Text, ClientMsgID: req.ClientMsgID}
	var ack logic.Ack
	if edit {
		ack, err = h.svc.Edit(r.Context(), id, cr)
	} else {
		ack, err = h.svc.Recall(r.Context(), id, cr)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeAck(w, ack)
}

func (h *Handler) reads(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	seq, err := pathSeq(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := h.svc.MessageReads(r.Context(), id, r.PathValue("id"), seq)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (h *Handler) setFlags(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Pinned *bool `json:"pinned"`
		Muted  *bool `json:"muted"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := h.svc.SetConversationFlags(r.Context(), id, r.PathValue("id"), req.Pinned, req.Muted, nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, conversationOut(c))
}
