package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// call sends a request on the long connection and waits for its answer. It
// is for idempotent requests only: when the connection is lost, or the
// server answers with a Retry or Reconnect code, it waits (for the next
// connection, retry_after, or a backoff) and sends the same request again,
// until ctx ends. A GiveUp code is returned as *Error.
func (c *Client) call(ctx context.Context, env *magpiepb.Envelope) (*magpiepb.Envelope, error) {
	for attempt := 0; ; attempt++ {
		s, err := c.ready(ctx)
		if err != nil {
			return nil, err
		}
		// A fresh copy for a repeat: the first may still sit in a dead
		// session's queue (or its writer), and request sets its id.
		try := env
		if attempt > 0 {
			try = proto.Clone(env).(*magpiepb.Envelope)
		}
		reply, err := s.request(ctx, try)
		if errors.Is(err, errConnLost) {
			continue // ready waits for the next connection
		}
		if err != nil {
			return nil, err
		}
		e := reply.GetError()
		if e == nil {
			return reply, nil
		}
		werr := errorFromWire(e)
		switch werr.Code.Action() {
		case wire.Retry:
			d := max(werr.RetryAfter, c.backoff.delay(attempt))
			if !sleep(ctx, d) {
				return nil, ctx.Err()
			}
		case wire.Relogin, wire.Reconnect:
			s.close(werr) // run sees the code, logs in again if needed, and reconnects
		default:
			return nil, werr
		}
	}
}

// Send stores a message and returns once the server acknowledged it, which
// means it is durably committed. Connection losses and retryable errors
// are handled by sending again with the same ClientMsgID (the server
// answers a repeat with the original seq), until the ack arrives or ctx
// ends. Send waits for the connection if the client is (re)connecting.
//
// A broadcast is not stored and has no seq, so the server cannot recognise
// a repeat: Send makes one attempt, and an error after the request went out
// (a lost connection) means it may or may not have been delivered.
func (c *Client) Send(ctx context.Context, req SendRequest) (Ack, error) {
	targets := 0
	for _, set := range []bool{req.ToUser != "", req.ToGroup != "", req.Broadcast} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		return Ack{}, badRequest("exactly one of ToUser, ToGroup and Broadcast must be set")
	}
	if req.Broadcast && req.FileID != "" {
		return Ack{}, badRequest("a broadcast cannot carry a file")
	}
	if req.Broadcast && !req.SendAt.IsZero() {
		return Ack{}, badRequest("a broadcast cannot be scheduled")
	}
	if req.FileID == "" || req.Text != "" {
		if err := wire.ValidText(req.Text); err != nil {
			return Ack{}, badRequest("%v", err)
		}
	}
	if req.ReplyTo != 0 && (req.Broadcast || !req.SendAt.IsZero()) {
		return Ack{}, badRequest("a broadcast or a scheduled message cannot be a reply")
	}
	send := &magpiepb.Send{ToUser: req.ToUser, ToGroup: req.ToGroup, Text: req.Text, FileId: req.FileID, Broadcast: req.Broadcast, ReplyTo: req.ReplyTo}
	if !req.SendAt.IsZero() {
		send.SendAt = req.SendAt.UnixMilli()
	}
	return c.storeCall(ctx, &magpiepb.Envelope{Body: &magpiepb.Envelope_Send{Send: send}}, &req.ClientMsgID, !req.Broadcast)
}

// Recall withdraws message seq of a conversation: this user's own message
// within the server's recall window, or any message of a group this user
// administers. The recall is itself a message of kind RECALL with its own
// seq, which the Ack reports; every member's devices receive it in order.
// Like Send, Recall repeats with the same client message id until the ack
// arrives or ctx ends.
func (c *Client) Recall(ctx context.Context, conversationID string, seq uint64) (Ack, error) {
	if conversationID == "" || seq == 0 {
		return Ack{}, badRequest("a conversation id and a seq are required")
	}
	var id string
	env := &magpiepb.Envelope{Body: &magpiepb.Envelope_Recall{Recall: &magpiepb.Recall{
		ConversationId: conversationID, Seq: seq,
	}}}
	return c.storeCall(ctx, env, &id, true)
}

// Edit replaces the text of this user's message seq, within the server's
// window. The edit is a message of kind EDIT with its own seq (the Ack's);
// it is retried like Send.
func (c *Client) Edit(ctx context.Context, conversationID string, seq uint64, text string) (Ack, error) {
	if conversationID == "" || seq == 0 {
		return Ack{}, badRequest("a conversation id and a seq are required")
	}
	if err := wire.ValidText(text); err != nil {
		return Ack{}, badRequest("%v", err)
	}
	var id string
	env := &magpiepb.Envelope{Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{
		ConversationId: conversationID, Seq: seq, Text: text,
	}}}
	return c.storeCall(ctx, env, &id, true)
}

// storeCall runs a request that stores a message (send, recall, edit) and
// answers with a send_ack. It fills in the client message id (*cmid, made
// up if empty), marks it in flight so the echo of this message to this
// Client is not delivered, and advances the cursor over the acked seq.
// retry false makes one attempt only.
func (c *Client) storeCall(ctx context.Context, env *magpiepb.Envelope, cmid *string, retry bool) (Ack, error) {
	if *cmid == "" {
		*cmid = newID()
	} else if err := wire.ValidID(*cmid, wire.MaxClientMsgID); err != nil {
		return Ack{}, badRequest("client message id %v", err)
	}
	switch b := env.Body.(type) {
	case *magpiepb.Envelope_Send:
		b.Send.ClientMsgId = *cmid
	case *magpiepb.Envelope_Recall:
		b.Recall.ClientMsgId = *cmid
	case *magpiepb.Envelope_Edit:
		b.Edit.ClientMsgId = *cmid
	}
	c.mu.Lock()
	c.sending[*cmid] = struct{}{}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.sending, *cmid)
		if env.GetSend().GetBroadcast() {
			if len(c.echoes) == maxEchoes {
				c.echoes = c.echoes[1:]
			}
			c.echoes = append(c.echoes, *cmid)
		}
		c.mu.Unlock()
	}()
	call := c.call
	if !retry {
		call = c.callOnce
	}
	reply, err := call(ctx, env)
	if err != nil {
		return Ack{}, err
	}
	if reply.GetOk() != nil { // an answer without a seq (a broadcast, on some servers)
		return Ack{ClientMsgID: *cmid, SentAt: time.Now()}, nil
	}
	a := reply.GetSendAck()
	if a == nil {
		return Ack{}, fmt.Errorf("magpie: unexpected answer to %T: %T", env.Body, reply.Body)
	}
	if a.GetScheduledId() != 0 { // stored to be sent later: no seq yet
		return Ack{ClientMsgID: a.GetClientMsgId(), Duplicate: a.GetDuplicate(), ScheduledID: a.GetScheduledId(), SendAt: time.UnixMilli(a.GetSendAt())}, nil
	}
	// Our own message is "delivered" to us: advance the cursor past it if
	// contiguous; otherwise it waits in the buffer for the gap to fill.
	c.ingest([]*magpiepb.Message{{ConversationId: a.GetConversationId(), Seq: a.GetSeq()}}, true)
	return Ack{
		ConversationID: a.GetConversationId(),
		Seq:            a.GetSeq(),
		ClientMsgID:    a.GetClientMsgId(),
		SentAt:         time.UnixMilli(a.GetSentAt()),
		Duplicate:      a.GetDuplicate(),
	}, nil
}

// callOnce is call without repeats, for requests that are not idempotent.
// It still waits for a connection before sending.
func (c *Client) callOnce(ctx context.Context, env *magpiepb.Envelope) (*magpiepb.Envelope, error) {
	s, err := c.ready(ctx)
	if err != nil {
		return nil, err
	}
	reply, err := s.request(ctx, env)
	if err != nil {
		return nil, err
	}
	if e := reply.GetError(); e != nil {
		werr := errorFromWire(e)
		if a := werr.Code.Action(); a == wire.Relogin || a == wire.Reconnect {
			s.close(werr)
		}
		return nil, werr
	}
	return reply, nil
}

// SendText sends text to a user; see Send.
func (c *Client) SendText(ctx context.Context, toUser, text string) (Ack, error) {
	return c.Send(ctx, SendRequest{ToUser: toUser, Text: text})
}

// SendGroup sends text to a group; see Send.
func (c *Client) SendGroup(ctx context.Context, groupID, text string) (Ack, error) {
	return c.Send(ctx, SendRequest{ToGroup: groupID, Text: text})
}

// History returns a page of a conversation (see HistoryQuery), oldest
// first. It does not go through OnMessage or move the cursors.
func (c *Client) History(ctx context.Context, conversationID string, q HistoryQuery) ([]Message, error) {
	if q.Limit < 0 || q.Limit > wire.MaxPageLimit {
		return nil, badRequest("limit must be 0-%d", wire.MaxPageLimit)
	}
	env := &magpiepb.Envelope{Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{
		ConversationId: conversationID, AfterSeq: q.AfterSeq, BeforeSeq: q.BeforeSeq, Limit: uint32(q.Limit),
	}}}
	reply, err := c.call(ctx, env)
	if err != nil {
		return nil, err
	}
	me := c.UserID()
	var out []Message
	for _, m := range reply.GetHistoryResult().GetMessages() {
		out = append(out, messageFromPB(m, me))
	}
	return out, nil
}

// MarkRead moves this user's read cursor of a conversation to seq. The
// server tells the sender and this user's other devices.
func (c *Client) MarkRead(ctx context.Context, conversationID string, seq uint64) error {
	env := &magpiepb.Envelope{Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{
		ConversationId: conversationID, Kind: magpiepb.ReceiptKind_RECEIPT_KIND_READ, Seq: seq,
	}}}
	_, err := c.call(ctx, env)
	return err
}

// Typing tells the other members of a conversation that this user is
// typing, or with stopped that they stopped (the message was sent, the box
// cleared). Nothing is stored: devices online now get Options.OnTyping.
// Send it at most every few seconds while the user types (receivers show
// it for TypingShowFor); the server allows 2 a second per user, burst 6
// (rate_limited beyond). Only for a conversation that exists and that the
// user is a member of (not_member otherwise). It is sent once, never
// repeated: a late typing notice is worse than none.
func (c *Client) Typing(ctx context.Context, conversationID string, stopped bool) error {
	s, err := c.ready(ctx)
	if err != nil {
		return err
	}
	reply, err := s.request(ctx, &magpiepb.Envelope{Body: &magpiepb.Envelope_Typing{Typing: &magpiepb.Typing{
		ConversationId: conversationID, Stopped: stopped,
	}}})
	if err != nil {
		return err
	}
	if e := reply.GetError(); e != nil {
		return errorFromWire(e)
	}
	return nil
}

// Online lists the users with at least one connected device whom this
// user may see, in one answer over the long connection. OnlinePaged is the
// same by prefix and in pages.
func (c *Client) Online(ctx context.Context) ([]OnlineUser, error) {
	reply, err := c.call(ctx, &magpiepb.Envelope{Body: &magpiepb.Envelope_Online{Online: &magpiepb.OnlineRequest{}}})
	if err != nil {
		return nil, err
	}
	return onlineUsers(reply.GetOnlineResult()), nil
}

// OnlinePaged is one page of the online users this user may see, over the
// long connection: what OnlineUsers asks over HTTP (the same prefix, limit,
// cursor and visibility), without an HTTP request per page. A zero query
// is the first page of 100.
func (c *Client) OnlinePaged(ctx context.Context, q OnlineQuery) (OnlinePage, error) {
	if q.Limit < 0 {
		return OnlinePage{}, fmt.Errorf("magpie: OnlineQuery.Limit %d is negative", q.Limit)
	}
	limit := uint32(min(q.Limit, 500))
	if limit == 0 {
		limit = 100 // a request with no field set is the unpaged list
	}
	reply, err := c.call(ctx, &magpiepb.Envelope{Body: &magpiepb.Envelope_Online{Online: &magpiepb.OnlineRequest{
		Prefix: q.Prefix, Limit: limit, Cursor: q.Cursor,
	}}})
	if err != nil {
		return OnlinePage{}, err
	}
	res := reply.GetOnlineResult()
	return OnlinePage{Users: onlineUsers(res), NextCursor: res.GetNextCursor()}, nil
}

func onlineUsers(res *magpiepb.OnlineResponse) []OnlineUser {
	out := make([]OnlineUser, 0, len(res.GetUsers()))
	for _, u := range res.GetUsers() {
		out = append(out, OnlineUser{UserID: u.GetUserId(), Username: u.GetUsername(), Devices: u.GetDevices()})
	}
	return out
}
