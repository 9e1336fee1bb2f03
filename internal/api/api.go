// Package api is Magpie's HTTP JSON API (docs/api.md): accounts, login,
// messages, conversations, history, receipts and online users. Handlers are
// thin: they decode, call the logic role, and encode. Errors become HTTP
// statuses here, from logic.Code, and nowhere else.
//
// The handler is safe for concurrent use.
package api

import (
	"cmp"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// MaxBody is the largest JSON request body accepted.
const MaxBody = 64 << 10

// Handler serves the API.
type Handler struct {
	svc Logic // logic.go
	log *slog.Logger
	mux *http.ServeMux
	ext extensions // files and the push API (files.go, push.go)

	limits Limits       // see SetLimits
	stats  handlerStats // see Stats
	routes []string     // every registered "METHOD /path", see Routes
}

// handle registers one route on mux and records its pattern: every route
// of the API goes through here, so Routes is the real route list (the
// OpenAPI test compares it with openapi.json).
func (h *Handler) handle(mux *http.ServeMux, pattern string, f http.HandlerFunc) {
	h.routes = append(h.routes, pattern)
	mux.HandleFunc(pattern, f)
}

// Routes returns the "METHOD /path" pattern of every route New
// registered, in registration order.
func (h *Handler) Routes() []string { return append([]string(nil), h.routes...) }

// New registers the API routes on mux; svc is normally a *logic.Service.
func New(mux *http.ServeMux, svc Logic, log *slog.Logger) *Handler {
	h := &Handler{svc: svc, log: log, mux: mux}
	h.handle(mux, "GET /healthz", h.health)
	h.handle(mux, "GET /v1/openapi.json", h.openAPI) // openapi.go
	h.handle(mux, "POST /v1/users", h.register)
	h.handle(mux, "POST /v1/login", h.login)
	h.handle(mux, "POST /v1/login/token", h.loginToken)
	h.handle(mux, "POST /v1/logout", h.auth(h.logout))
	h.handle(mux, "GET /v1/gateway", h.auth(h.gateway))
	h.handle(mux, "GET /v1/users/online", h.auth(h.online))
	h.handle(mux, "GET /v1/users/{username}", h.auth(h.lookupUser))
	h.handle(mux, "POST /v1/messages", h.auth(h.send))
	h.handle(mux, "GET /v1/conversations", h.auth(h.conversations))
	h.handle(mux, "GET /v1/conversations/{id}/messages", h.auth(h.messages))
	h.handle(mux, "POST /v1/conversations/{id}/read", h.auth(h.read))
	h.registerExtensions(mux)
	h.registerGroups(mux)   // groups.go
	h.registerSocial(mux)   // friends.go
	h.registerChanges(mux)  // recall.go
	h.registerSessions(mux) // sessions.go
	h.registerSearch(mux)   // search.go
	h.registerProfiles(mux) // profiles.go
	return h
}

type errorBody struct {
	Error struct {
		Code         string `json:"code"`
		Message      string `json:"message"`
		RetryAfterMs int    `json:"retry_after_ms,omitempty"`
	} `json:"error"`
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := logic.Code(err)
	status := code.HTTPStatus() // from the code table, proto/wire/codes.json
	// Overload refusals (the hashing slots, a full queue) are expected
	// under a flood and counted in the metrics; logging each would let a
	// flood fill the log too.
	if status >= 500 && !errors.Is(err, logic.ErrOverloaded) {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	var body errorBody
	body.Error.Code = code.String()
	body.Error.Message = logic.Message(err)
	if ms := logic.RetryAfter(err); ms > 0 {
		body.Error.RetryAfterMs = ms
		w.Header().Set("Retry-After", strconv.Itoa((ms+999)/1000))
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func badRequest(msg string) error {
	return &logic.Error{Kind: logic.KindInvalid, Msg: msg, Err: logic.ErrBadRequest}
}

// identify authenticates a request by its Bearer token. There is no token
// in the query string (?access_token=): URLs end up in browser history,
// proxy logs and Referer headers; the web client fetches files with the
// header and shows them as blob: URLs.
func (h *Handler) identify(r *http.Request) (logic.Identity, error) {
	tok, ok := bearer(r.Header.Get("Authorization"))
	if !ok || tok == "" {
		return logic.Identity{}, &logic.Error{Kind: logic.KindUnauthenticated, Msg: "missing Bearer token", Err: logic.ErrUnauthenticated}
	}
	return h.svc.Authenticate(r.Context(), tok)
}

// bearer returns the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 9110, section 11.1): "bearer
// x" and "BEARER x" are "Bearer x".
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(tok, " "), true
}

// auth requires a valid Bearer token.
func (h *Handler) auth(next func(http.ResponseWriter, *http.Request, logic.Identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := h.identify(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		next(w, r, id)
	}
}

// health is for load balancers: 503 while this node cannot reach its
// database, so new requests go elsewhere.
func (h *Handler) health(w http.ResponseWriter, r *http.Request) {
	if err := h.svc.StoreErr(); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "database unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (h *Handler) register(w http.ResponseWriter, r *http.Request) {
	var req struct {
		App      string `json:"app"`
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	u, err := h.svc.RegisterFrom(r.Context(), h.clientOf(r, req.App), req.Username, req.Password)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"id": u.ID, "username": u.Username})
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	var req struct {
		App      string `json:"app"`
		Username string `json:"username"`
		Password string `json:"password"`
		Device   string `json:"device"`
		Platform string `json:"platform"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.svc.LoginFrom(r.Context(), h.clientOf(r, req.App), req.Username, req.Password, req.Device, req.Platform)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, loginJSON(res))
}

// loginToken exchanges a token from outside (OIDC ID token, an app's JWT)
// for a session: the same answer as a login.
func (h *Handler) loginToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		App      string `json:"app"`
		Token    string `json:"token"`
		Device   string `json:"device"`
		Platform string `json:"platform"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	res, err := h.svc.LoginToken(r.Context(), h.clientOf(r, req.App), req.Token, req.Device, req.Platform)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, loginJSON(res))
}

// loginJSON is a login's answer (docs/api.md); a user from an outside
// source also gets the profile it gave.
func loginJSON(res logic.LoginResult) map[string]any {
	m := map[string]any{
		"token": res.Token, "user_id": res.Identity.UserID, "username": res.Identity.Username,
		"session_id": res.Identity.SessionID, "device": res.Identity.Device,
		"expires_at": res.ExpiresAt.UTC().Format(time.RFC3339),
		"gateway":    gatewayJSON(res.Gateway),
	}
	if res.User.DisplayName != "" {
		m["display_name"] = res.User.DisplayName
	}
	if res.User.Email != "" {
		m["email"] = res.User.Email
	}
	return m
}

func (h *Handler) gateway(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	gw, err := h.svc.Route(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"gateway": gatewayJSON(gw)})
}

// gatewayJSON is the documented {id, tcp, ws, mqtt?} shape of a gateway
// (docs/api.md): the registry keeps addresses by transport kind, and a kind
// a gateway does not advertise is "".
func gatewayJSON(gw *clusterpb.GatewayInfo) map[string]string {
	tcp, ws := gw.GetAddrs()["tcp"], gw.GetAddrs()["ws"]
	if len(gw.GetAddrs()) == 0 { // a gateway older than Addrs (cluster.proto)
		tcp, ws = gw.GetTcp(), gw.GetWs()
	}
	out := map[string]string{"id": gw.GetId(), "tcp": tcp, "ws": ws}
	if mqtt := gw.GetAddrs()["mqtt"]; mqtt != "" {
		out["mqtt"] = mqtt // only where a gateway has --mqtt
	}
	return out
}

// logout ends the caller's session, or with ?all=true every session of
// the user.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	end := h.svc.Logout
	switch r.URL.Query().Get("all") {
	case "", "false", "0":
	case "true", "1":
		end = h.svc.LogoutAll
	default:
		h.fail(w, r, badRequest("all must be true or false"))
		return
	}
	if err := end(r.Context(), id); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// online is GET /v1/users/online?prefix=&limit=&cursor=: a page of the
// online users the caller may see (--online-visibility).
func (h *Handler) online(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	limit, err := queryUint(r, "limit")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	q := r.URL.Query()
	page, err := h.svc.OnlinePage(r.Context(), id, logic.OnlineQuery{Prefix: q.Get("prefix"), Limit: int(min(limit, 1<<20)), Cursor: q.Get("cursor")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// lookupUser is GET /v1/users/{username}: does this user exist, and how is
// the name spelled. ("online" is the online list above: the more specific
// pattern wins, so a user named online is not found this way.)
func (h *Handler) lookupUser(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	u, err := h.svc.LookupUser(r.Context(), id, r.PathValue("username"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

type messageJSON struct {
	ConversationID string     `json:"conversation_id"`
	Seq            uint64     `json:"seq"`
	SenderID       int64      `json:"sender_id"`
	Sender         string     `json:"sender"`
	ClientMsgID    string     `json:"client_msg_id"`
	Text           string     `json:"text"`
	SentAt         int64      `json:"sent_at"`
	Kind           int        `json:"kind"`              // magpiepb.MessageKind: 0 text, 1 file, 2 recall, 3 edit, 4 event, 5 notification
	RefSeq         uint64     `json:"ref_seq,omitempty"` // recall, edit: the message changed; text, file: the one replied to
	File           *fileJSON  `json:"file,omitempty"`
	Event          *eventJSON `json:"event,omitempty"`
	EditedAt       int64      `json:"edited_at,omitempty"`
	Recalled       bool       `json:"recalled,omitempty"`
}

type fileJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

type eventJSON struct {
	Type      string   `json:"type"`
	ActorID   int64    `json:"actor_id"`
	Actor     string   `json:"actor"`
	UserIDs   []int64  `json:"user_ids,omitempty"`
	Usernames []string `json:"usernames,omitempty"`
	Detail    string   `json:"detail,omitempty"`
}

func messageOut(m store.Message) messageJSON {
	out := messageJSON{ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, Sender: m.Sender,
		ClientMsgID: m.ClientMsgID, Text: m.Text, SentAt: m.SentAt.UnixMilli(), Kind: int(m.Kind),
		RefSeq: m.RefSeq, Recalled: m.Recalled}
	if !m.EditedAt.IsZero() {
		out.EditedAt = m.EditedAt.UnixMilli()
	}
	if f := m.File; f != nil {
		out.File = &fileJSON{f.ID, f.Name, f.ContentType, f.Size}
	}
	if e := m.Event; e != nil {
		out.Event = &eventJSON{e.Type, e.ActorID, e.Actor, e.UserIDs, e.Usernames, e.Detail}
	}
	return out
}

func (h *Handler) send(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		ToUser      string `json:"to_user"`
		ToGroup     string `json:"to_group"`
		Text        string `json:"text"`
		ClientMsgID string `json:"client_msg_id"`
		FileID      string `json:"file_id"`
		Broadcast   bool   `json:"broadcast"`
		SendAt      int64  `json:"send_at"`  // Unix ms; 0: now
		ReplyTo     uint64 `json:"reply_to"` // the seq this message answers
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	if req.SendAt < 0 {
		h.fail(w, r, badRequest("send_at must be Unix milliseconds"))
		return
	}
	var sendAt time.Time
	if req.SendAt > 0 {
		sendAt = time.UnixMilli(req.SendAt)
	}
	ack, err := h.svc.Send(r.Context(), id, logic.SendRequest{ToUser: req.ToUser, ToGroup: req.ToGroup, Text: req.Text,
		ClientMsgID: req.ClientMsgID, FileID: req.FileID, Broadcast: req.Broadcast, SendAt: sendAt, ReplyTo: req.ReplyTo})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeAck(w, ack)
}

func writeAck(w http.ResponseWriter, ack logic.Ack) { writeJSON(w, http.StatusOK, ackJSON(ack)) }

// ackJSON is a send's ACK as the HTTP API shows it.
func ackJSON(ack logic.Ack) map[string]any {
	if ack.ScheduledID > 0 {
		return map[string]any{"scheduled_id": ack.ScheduledID, "send_at": ack.SendAt.UnixMilli(),
			"client_msg_id": ack.ClientMsgID, "duplicate": ack.Duplicate}
	}
	return map[string]any{
		"conversation_id": ack.ConversationID, "seq": ack.Seq, "client_msg_id": ack.ClientMsgID,
		"sent_at": ack.SentAt.UnixMilli(), "duplicate": ack.Duplicate,
	}
}

func (h *Handler) conversations(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	convs, err := h.svc.Conversations(r.Context(), id)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]map[string]any, 0, len(convs))
	for _, c := range convs {
		out = append(out, conversationOut(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": out})
}

func conversationOut(c store.Conversation) map[string]any {
	var last any
	if c.LastMessage != nil {
		last = messageOut(*c.LastMessage)
	}
	out := map[string]any{
		"id": c.ID, "kind": c.Kind, "name": c.Name, "peer": c.Peer, "peer_id": c.PeerID, "last_seq": c.LastSeq,
		"delivered_seq": c.DeliveredSeq, "read_seq": c.ReadSeq, "peer_delivered_seq": c.PeerDeliveredSeq,
		"peer_read_seq": c.PeerReadSeq, "unread": c.Unread(), "last_message": last,
		"pinned": c.Pinned, "muted": c.Muted,
	}
	if c.ClearedSeq > 0 {
		out["cleared_seq"] = c.ClearedSeq // only after a clear
	}
	return out
}

func queryUint(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badRequest(name + " must be a non-negative integer")
	}
	return n, nil
}

func (h *Handler) messages(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	after, err1 := queryUint(r, "after_seq")
	before, err2 := queryUint(r, "before_seq")
	limit, err3 := queryUint(r, "limit")
	if err := cmp.Or(err1, err2, err3); err != nil {
		h.fail(w, r, err)
		return
	}
	if limit > wire.MaxPageLimit {
		limit = wire.MaxPageLimit
	}
	msgs, last, err := h.svc.History(r.Context(), id, store.MessageQuery{ConversationID: r.PathValue("id"), AfterSeq: after, BeforeSeq: before, Limit: int(limit)})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]messageJSON, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, messageOut(m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "last_seq": last})
}

func (h *Handler) read(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	var req struct {
		Seq uint64 `json:"seq"`
	}
	if err := decode(w, r, &req); err != nil {
		h.fail(w, r, err)
		return
	}
	cur, err := h.svc.MoveCursor(r.Context(), id, r.PathValue("id"), store.Read, req.Seq, nil)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"conversation_id": cur.ConversationID, "delivered_seq": cur.DeliveredSeq, "read_seq": cur.ReadSeq, "last_seq": cur.LastSeq,
	})
}
