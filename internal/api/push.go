package api

import (
	"errors"
	"io"
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/push"
	"github.com/magpie-im/magpie/internal/store"
)

var errPushQuery = badRequest("the push API takes no query string (the signature does not cover one)")

var errPushDisabled = &logic.Error{Kind: logic.KindNotFound, Msg: "push API disabled", Err: store.ErrNotFound}

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
	// On with --push-keys, or with apps besides the default (their keys).
	if v == nil || !v.Enabled() && !h.svc.HasApps(r.Context()) {
		h.fail(w, r, errPushDisabled)
		return
	}
	// The signature covers method, path and body, not a query string: one
	// is refused rather than trusted unsigned.
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		h.fail(w, r, errPushQuery)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		h.fail(w, r, readError(err))
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
	app := store.DefaultApp // the server's --push-keys
	if !v.Static(keyID) {
		a, _, err := h.svc.AppForKey(r.Context(), keyID, false)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		app = a.ID
	}
	res, err := h.svc.Push(r.Context(), logic.PushRequest{
		AppID: app, KeyID: keyID, ToUsers: req.ToUsers, ToGroup: req.ToGroup, Everyone: req.Everyone,
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
		return &logic.Error{Kind: logic.KindRateLimited, Msg: err.Error(), RetryAfter: 1000, Err: logic.ErrRateLimited}
	}
	return &logic.Error{Kind: logic.KindUnauthenticated, Msg: "push signature: " + err.Error(), Err: logic.ErrUnauthenticated}
}

// decodePush reads a verified body strictly: unknown fields are refused,
// so a misspelt target is not silently ignored.
func decodePush(contentType string, body []byte) (pushBody, error) {
	var req pushBody
	if err := jsonContentType(contentType); err != nil {
		return req, err
	}
	return req, decodeBody(body, &req, true)
}
