package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

var errPushDisabled = &logic.Error{Code: wire.CodeNotFound, Msg: "push API disabled", Err: store.ErrNotFound}

type pushBody struct {
	ToUsers   []string `json:"to_users"`
	ToGroup   string   `json:"to_group"`
	Everyone  bool     `json:"everyone"`
	Text      string   `json:"text"`
	From      string   `json:"from"`
	Transient bool     `json:"transient"`
	PushID    string   `json:"push_id"`
}

// push is POST /v1/push, the signed server push API (package push).
func (h *Handler) push(w http.ResponseWriter, r *http.Request) {
	v := h.ext.push.Load()
	if v == nil {
		h.fail(w, r, errPushDisabled)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, &logic.Error{Code: wire.CodeTooLarge, Msg: fmt.Sprintf("body larger than %d bytes", MaxBody), Err: logic.ErrBadRequest})
			return
		}
		h.fail(w, r, badRequest("reading body: "+err.Error()))
		return
	}
	keyID, err := v.Verify(r.Method, r.URL.Path, r.Header, body)
	if err != nil {
		h.fail(w, r, signatureError(err))
		return
	}
	req, err := decodePush(r.Header.Get("Content-Type"), body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.svc.Push(r.Context(), logic.PushRequest{
		KeyID: keyID, ToUsers: req.ToUsers, ToGroup: req.ToGroup, Everyone: req.Everyone,
		Text: req.Text, From: req.From, Transient: req.Transient, PushID: req.PushID,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if req.Transient {
		writeJSON(w, http.StatusOK, map[string]any{"delivered": res.Delivered})
		return
	}
	acks := make([]map[string]any, 0, len(res.Acks))
	for _, a := range res.Acks {
		if a.Err != nil {
			acks = append(acks, map[string]any{"to": a.To, "error": map[string]string{
				"code": logic.Code(a.Err).String(), "message": logic.Message(a.Err),
			}})
			continue
		}
		m := ackJSON(a.Ack)
		m["to"] = a.To
		acks = append(acks, m)
	}
	writeJSON(w, http.StatusOK, map[string]any{"stored": res.Stored, "acks": acks})
}

// signatureError is the client-visible form of a refused signature: 401
// with the reason, or 429 when the nonce cache is full.
func signatureError(err error) error {
	if errors.Is(err, push.ErrNonceCacheFull) {
		return &logic.Error{Code: wire.CodeRateLimited, Msg: err.Error(), RetryAfter: 1000, Err: logic.ErrRateLimited}
	}
	return &logic.Error{Code: wire.CodeUnauthenticated, Msg: "push signature: " + err.Error(), Err: logic.ErrUnauthenticated}
}

// decodePush reads a verified body strictly: unknown fields are refused,
// so a misspelt target is not silently ignored.
func decodePush(contentType string, body []byte) (pushBody, error) {
	var req pushBody
	if contentType != "" && !strings.HasPrefix(contentType, "application/json") {
		return req, badRequest("Content-Type must be application/json")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return req, badRequest("empty body, expected a JSON object")
		}
		return req, badRequest("invalid JSON: " + err.Error())
	}
	if dec.More() {
		return req, badRequest("trailing data after the JSON object")
	}
	return req, nil
}
