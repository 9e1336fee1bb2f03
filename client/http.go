package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/magpie-im/magpie/proto/wire"
)

// Register creates an account on the server at base URL server (for
// example "http://127.0.0.1:8080") with http.DefaultClient; Client.Register
// does the same with a Client's TLS settings. A taken name is an *Error with
// Code wire.CodeConflict.
func Register(ctx context.Context, server, username, password string) (User, error) {
	var u User
	body := map[string]string{"username": username, "password": password}
	err := doJSON(ctx, http.DefaultClient, http.MethodPost, strings.TrimRight(server, "/")+"/v1/users", "", body, &u)
	return u, err
}

// Register creates the account Options.Username with Options.Password,
// through the Client's HTTP client (so with Options.TLS or
// Options.HTTPClient), without connecting. A taken name is an *Error with
// Code wire.CodeConflict.
func (c *Client) Register(ctx context.Context) (User, error) {
	var u User
	body := map[string]string{"username": c.opts.Username, "password": c.opts.Password}
	if c.opts.App != "" {
		body["app"] = c.opts.App
	}
	err := doJSON(ctx, c.hc, http.MethodPost, c.url("/v1/users"), "", body, &u)
	return u, err
}

// LookupUser says whether a user exists and how the name is spelled (names
// are unique regardless of case): GET /v1/users/{username}. A name nobody
// has is an *Error with wire.CodeNotFound. Clients use it to refuse a chat
// with an unknown name before anything is sent.
func (c *Client) LookupUser(ctx context.Context, username string) (User, error) {
	if err := wire.ValidName(username); err != nil {
		return User{}, badRequest("%v", err)
	}
	var out struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(username), nil, &out); err != nil {
		return User{}, err
	}
	return User{ID: out.UserID, Username: out.Username}, nil
}

// doJSON makes one HTTP call. Error statuses become *Error, read from the
// server's {"error":{...}} body when there is one.
func doJSON(ctx context.Context, hc *http.Client, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		return httpError(resp, data)
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("magpie: decoding %s %s: %w", method, req.URL.Path, err)
	}
	return nil
}

// httpError turns an error status into an *Error, read from the server's
// {"error":{...}} body when there is one.
func httpError(resp *http.Response, body []byte) *Error {
	var eb struct {
		Error struct {
			Code         string `json:"code"`
			Message      string `json:"message"`
			RetryAfterMS int64  `json:"retry_after_ms"`
		} `json:"error"`
	}
	e := &Error{Code: codeForStatus(resp.StatusCode), Status: resp.StatusCode, Message: resp.Status}
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		if c, ok := codeByName[eb.Error.Code]; ok {
			e.Code = c
		}
		e.Message = eb.Error.Message
		e.RetryAfter = time.Duration(eb.Error.RetryAfterMS) * time.Millisecond
	}
	return e
}

// session credentials from POST /v1/login.
type loginInfo struct {
	Token     string    `json:"token"`
	UserID    int64     `json:"user_id"`
	Username  string    `json:"username"`
	SessionID string    `json:"session_id"`
	Device    string    `json:"device"`
	ExpiresAt time.Time `json:"expires_at"`
	reroute   bool      // ask GET /v1/gateway for a live gateway before dialling
	Gateway   struct {
		ID  string `json:"id"`
		TCP string `json:"tcp"`
		WS  string `json:"ws"`
	} `json:"gateway"`
}

// usable reports whether the token can still be offered; a token close to
// expiry is replaced rather than refused mid-handshake.
func (l *loginInfo) usable(now time.Time) bool {
	return l != nil && l.Token != "" && (l.ExpiresAt.IsZero() || l.ExpiresAt.Sub(now) > 30*time.Second)
}

func (c *Client) url(path string) string { return c.server + path }

// login logs in over HTTP and remembers the credentials.
//
// A closed Client never logs in: its device may already belong to a newer
// Client, whose session a login here would replace (kicked "replaced").
// For the same reason Close cancels a login in flight.
func (c *Client) login(ctx context.Context) (*loginInfo, error) {
	c.mu.Lock()
	closed, password := c.closed, c.opts.Password // ChangePassword replaces it
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.runCtx, cancel)()
	body := map[string]string{
		"username": c.opts.Username,
		"password": password,
		"device":   c.device,
	}
	if c.opts.Platform != "" {
		body["platform"] = c.opts.Platform
	}
	if c.opts.App != "" {
		body["app"] = c.opts.App
	}
	li := new(loginInfo)
	if err := doJSON(ctx, c.hc, http.MethodPost, c.url("/v1/login"), "", body, li); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.auth = li
	c.userID, c.username = li.UserID, li.Username
	c.mu.Unlock()
	c.log.Debug("logged in", "user", li.Username, "session", li.SessionID, "gateway", li.Gateway.ID)
	return li, nil
}

// credentials returns the current login, logging in if there is none or it
// is about to expire.
func (c *Client) credentials(ctx context.Context) (*loginInfo, error) {
	c.mu.Lock()
	li, closed := c.auth, c.closed
	c.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if !li.usable(time.Now()) {
		return c.login(ctx)
	}
	if !li.reroute {
		return li, nil
	}
	// The gateway drained or died but the token is good: ask for a live
	// gateway with it (cheap) rather than logging in again (an Argon2 hash).
	var out struct {
		Gateway struct {
			ID  string `json:"id"`
			TCP string `json:"tcp"`
			WS  string `json:"ws"`
		} `json:"gateway"`
	}
	if err := doJSON(ctx, c.hc, http.MethodGet, c.url("/v1/gateway"), li.Token, nil, &out); err != nil {
		var e *Error
		if errors.As(err, &e) && e.Code.Action() == wire.Relogin {
			return c.login(ctx)
		}
		return nil, err
	}
	next := *li
	next.reroute = false
	next.Gateway.ID, next.Gateway.TCP, next.Gateway.WS = out.Gateway.ID, out.Gateway.TCP, out.Gateway.WS
	c.mu.Lock()
	if c.auth == li {
		c.auth = &next
	}
	c.mu.Unlock()
	c.log.Debug("rerouted", "gateway", next.Gateway.ID)
	return &next, nil
}

// rerouteFrom marks the login li to ask for another gateway on the next
// attempt (its gateway drained or stopped answering).
func (c *Client) rerouteFrom(li *loginInfo) {
	c.mu.Lock()
	if c.auth == li {
		next := *li
		next.reroute = true
		c.auth = &next
	}
	c.mu.Unlock()
}

// dropToken forgets a token the server refused, so the next attempt logs in.
func (c *Client) dropToken(refused *loginInfo) {
	c.mu.Lock()
	if refused == nil || c.auth == refused {
		c.auth = nil
	}
	c.mu.Unlock()
}

// authedJSON is doJSON with the session token, logging in again once if the
// server refuses it.
func (c *Client) authedJSON(ctx context.Context, method, path string, in, out any) error {
	for attempt := 0; ; attempt++ {
		li, err := c.credentials(ctx)
		if err != nil {
			return err
		}
		err = doJSON(ctx, c.hc, method, c.url(path), li.Token, in, out)
		if e, ok := err.(*Error); ok && e.Code.Action() == wire.Relogin && attempt == 0 {
			c.dropToken(li)
			continue
		}
		return err
	}
}

// jsonMessage is a message in an HTTP answer (docs/api.md).
type jsonMessage struct {
	ConversationID string      `json:"conversation_id"`
	Seq            uint64      `json:"seq"`
	SenderID       int64       `json:"sender_id"`
	Sender         string      `json:"sender"`
	Peer           string      `json:"peer"`
	ClientMsgID    string      `json:"client_msg_id"`
	Text           string      `json:"text"`
	SentAt         int64       `json:"sent_at"`
	Kind           MessageKind `json:"kind"`
	RefSeq         uint64      `json:"ref_seq"`
	File           *FileRef    `json:"file"`
	Event          *struct {
		Type      string   `json:"type"`
		ActorID   int64    `json:"actor_id"`
		Actor     string   `json:"actor"`
		UserIDs   []int64  `json:"user_ids"`
		Usernames []string `json:"usernames"`
		Detail    string   `json:"detail"`
	} `json:"event"`
	Transient bool  `json:"transient"`
	EditedAt  int64 `json:"edited_at"`
	Recalled  bool  `json:"recalled"`
}

func (m *jsonMessage) message(me int64, peer string) *Message {
	if m.Peer != "" {
		peer = m.Peer
	}
	msg := &Message{
		ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID, Sender: m.Sender,
		Peer: peer, ClientMsgID: m.ClientMsgID, Text: m.Text, SentAt: time.UnixMilli(m.SentAt),
		Own: me != 0 && m.SenderID == me, Kind: m.Kind, RefSeq: m.RefSeq, File: m.File,
		Transient: m.Transient, EditedAt: unixMilli(m.EditedAt), Recalled: m.Recalled,
	}
	if e := m.Event; e != nil {
		msg.Event = &GroupEvent{Type: e.Type, ActorID: e.ActorID, Actor: e.Actor,
			UserIDs: e.UserIDs, Usernames: e.Usernames, Detail: e.Detail}
	}
	return msg
}

// jsonConversation is a conversation in an HTTP answer.
type jsonConversation struct {
	Conversation
	LastMessage *jsonMessage `json:"last_message"`
}

func (cv *jsonConversation) conversation(me int64) Conversation {
	conv := cv.Conversation
	if m := cv.LastMessage; m != nil {
		conv.LastMessage = m.message(me, conv.Peer)
	}
	return conv
}

// Conversations lists this user's conversations (HTTP), most recent first.
func (c *Client) Conversations(ctx context.Context) ([]Conversation, error) {
	var resp struct {
		Conversations []jsonConversation `json:"conversations"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/conversations", nil, &resp); err != nil {
		return nil, err
	}
	me := c.UserID()
	out := make([]Conversation, 0, len(resp.Conversations))
	for i := range resp.Conversations {
		out = append(out, resp.Conversations[i].conversation(me))
	}
	return out, nil
}

// SetConversationFlags sets this user's pinned and muted flags of a
// conversation; a nil pointer leaves that flag as it is. The server tells
// this user's other devices (Options.OnConversation).
func (c *Client) SetConversationFlags(ctx context.Context, conversationID string, pinned, muted *bool) (Conversation, error) {
	body := map[string]bool{}
	if pinned != nil {
		body["pinned"] = *pinned
	}
	if muted != nil {
		body["muted"] = *muted
	}
	var cv jsonConversation
	if err := c.authedJSON(ctx, http.MethodPatch, "/v1/conversations/"+url.PathEscape(conversationID), body, &cv); err != nil {
		return Conversation{}, err
	}
	return cv.conversation(c.UserID()), nil
}

// HideConversation takes a conversation out of this user's list
// (Conversations) until a new message arrives in it, and returns the seq
// it was hidden at. With clear, this user's history of it is also cleared:
// History and sync give only messages after that seq; the other members
// keep theirs. Other devices see it on their next Conversations call.
func (c *Client) HideConversation(ctx context.Context, conversationID string, clear bool) (uint64, error) {
	path := "/v1/conversations/" + url.PathEscape(conversationID)
	if clear {
		path += "?clear=true"
	}
	var resp struct {
		HiddenSeq uint64 `json:"hidden_seq"`
	}
	if err := c.authedJSON(ctx, http.MethodDelete, path, nil, &resp); err != nil {
		return 0, err
	}
	return resp.HiddenSeq, nil
}

// gatewayAddr fixes up a gateway address that names no usable host (":7000",
// "0.0.0.0:7000") by using the HTTP server's host instead.
func (c *Client) gatewayAddr(addr string) string {
	if addr == "" {
		return addr
	}
	u, err := url.Parse(c.server)
	if err != nil || u.Hostname() == "" {
		return addr
	}
	fix := func(hostport string) string {
		host, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return hostport
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return net.JoinHostPort(u.Hostname(), port)
		}
		return hostport
	}
	if wu, err := url.Parse(addr); err == nil && (wu.Scheme == "ws" || wu.Scheme == "wss") {
		wu.Host = fix(wu.Host)
		return wu.String()
	}
	if scheme, rest, ok := strings.Cut(addr, "://"); ok { // tls://host:port
		return scheme + "://" + fix(rest)
	}
	return fix(addr)
}
