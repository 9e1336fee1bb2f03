package logic

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// The bus side of the Service: it implements cluster.LogicHandler, turning
// gateway-forwarded frames into calls and errors into Error envelopes.

const requestTimeout = 15 * time.Second

// AuthenticateConn answers a gateway's AuthRequest.
func (s *Service) AuthenticateConn(ctx context.Context, req *clusterpb.AuthRequest) *clusterpb.AuthReply {
	if req.Conn == nil {
		return &clusterpb.AuthReply{Envelope: errorEnvelope(0, badRequest("missing connection"))}
	}
	id, err := s.Authenticate(ctx, req.Token)
	if err != nil {
		return &clusterpb.AuthReply{Envelope: errorEnvelope(0, err)}
	}
	if max := s.cfg.MaxConnsPerUser; max > 0 && len(s.presence.Conns(id.UserID)) >= max {
		return &clusterpb.AuthReply{Envelope: errorEnvelope(0, &Error{
			Code: wire.CodeRateLimited, Msg: fmt.Sprintf("too many connections for this user (limit %d)", max), RetryAfter: 5000, Err: ErrRateLimited,
		})}
	}
	ref := &clusterpb.ConnRef{
		Gateway: req.Conn.Gateway, Conn: req.Conn.Conn, UserId: id.UserID,
		SessionId: id.SessionID, Device: id.Device, Platform: id.Platform, ExpiresMs: id.ExpiresAt.UnixMilli(),
	}
	// Route to the connection from now on, before the bucket's watch says so.
	s.presence.Add(ref)
	return &clusterpb.AuthReply{Conn: ref, Envelope: encode(&magpiepb.Envelope{Body: &magpiepb.Envelope_AuthOk{AuthOk: &magpiepb.AuthOK{
		UserId: id.UserID, Username: id.Username, SessionId: id.SessionID, Device: id.Device, HeartbeatSeconds: s.cfg.HeartbeatSecs,
	}}})}
}

// Handle answers one client request forwarded by a gateway. It returns
// quickly: sends go to the commit loop, reads run on their own goroutine.
func (s *Service) Handle(req *clusterpb.Request, reply func([]byte)) {
	var env magpiepb.Envelope
	if req.Conn == nil || proto.Unmarshal(req.Envelope, &env) != nil {
		reply(errorEnvelope(0, &Error{Code: wire.CodeProtocolError, Msg: "undecodable request"}))
		return
	}
	c := req.Conn
	id := Identity{UserID: c.UserId, SessionID: c.SessionId, Device: c.Device, Platform: c.Platform}
	rid := env.Id
	// A token expires on a live connection too: refuse its requests and
	// close it, so the client logs in again. (The gateway closes it at
	// expiry; this covers a request that crossed that close.)
	now := s.now()
	if c.ExpiresMs > 0 && now.UnixMilli() >= c.ExpiresMs {
		reply(errorEnvelope(rid, &Error{Code: wire.CodeSessionExpired, Msg: "session expired, log in again", Err: ErrUnauthenticated}))
		s.kick([]*clusterpb.ConnRef{c}, wire.CodeSessionExpired, "session expired, log in again")
		return
	}
	s.seen(c.SessionId, now)
	answer := func(body *magpiepb.Envelope, err error) {
		if err != nil {
			reply(errorEnvelope(rid, err))
			return
		}
		body.Id = rid
		reply(encode(body))
	}
	// Sends, recalls and edits of one connection run in arrival order on
	// its lane (on this logic node; requests of one connection that reach
	// different logic nodes are not ordered with each other).
	// prepare is the request's first step (see laneItem).
	ordered := func(prepare func(context.Context, Identity) (queue func())) {
		if !s.inLane(c.Gateway+"/"+strconv.FormatUint(c.Conn, 10), func() (then func()) {
			s.withUser(id, answer, func(ctx context.Context, id Identity) { then = prepare(ctx, id) })
			return then
		}) {
			answer(nil, &Error{Code: wire.CodeRateLimited, Msg: "server busy, retry", RetryAfter: 100, Err: ErrOverloaded})
		}
	}
	switch b := env.Body.(type) {
	case *magpiepb.Envelope_Send:
		ordered(func(ctx context.Context, id Identity) func() {
			if err := s.allowSend(id.UserID); err != nil {
				answer(nil, err)
				return nil
			}
			return s.sendSteps(ctx, id, SendRequest{ToUser: b.Send.ToUser, ToGroup: b.Send.ToGroup, Text: b.Send.Text, ClientMsgID: b.Send.ClientMsgId,
				FileID: b.Send.FileId, Broadcast: b.Send.Broadcast}, c, ackAnswer(answer))
		})
	case *magpiepb.Envelope_Recall:
		ordered(func(ctx context.Context, id Identity) func() {
			r := b.Recall
			return s.changeSteps(ctx, id, store.KindRecall, ChangeRequest{ConversationID: r.ConversationId, Seq: r.Seq, ClientMsgID: r.ClientMsgId}, c, ackAnswer(answer))
		})
	case *magpiepb.Envelope_Edit:
		ordered(func(ctx context.Context, id Identity) func() {
			e := b.Edit
			return s.changeSteps(ctx, id, store.KindEdit, ChangeRequest{ConversationID: e.ConversationId, Seq: e.Seq, Text: e.Text, ClientMsgID: e.ClientMsgId}, c, ackAnswer(answer))
		})
	case *magpiepb.Envelope_Receipt:
		go s.withUser(id, answer, func(ctx context.Context, id Identity) {
			kind := store.CursorKind(b.Receipt.Kind)
			_, err := s.MoveCursor(ctx, id, b.Receipt.ConversationId, kind, b.Receipt.Seq, c)
			answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_Ok{Ok: &magpiepb.Ok{}}}, err)
		})
	case *magpiepb.Envelope_Sync:
		go s.withUser(id, answer, func(ctx context.Context, id Identity) {
			if len(b.Sync.Cursors) > wire.MaxCursors {
				answer(nil, &Error{Code: wire.CodeTooLarge, Msg: "too many cursors", Err: ErrBadRequest})
				return
			}
			cur := make(map[string]uint64, len(b.Sync.Cursors))
			for _, k := range b.Sync.Cursors {
				if err := validConversationID(k.ConversationId); err != nil {
					answer(nil, err)
					return
				}
				cur[k.ConversationId] = k.Seq
			}
			res, err := s.Sync(ctx, id, cur, int(b.Sync.Limit))
			answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_SyncResult{SyncResult: res}}, err)
		})
	case *magpiepb.Envelope_History:
		go s.withUser(id, answer, func(ctx context.Context, id Identity) {
			h := b.History
			msgs, last, err := s.History(ctx, id, store.MessageQuery{ConversationID: h.ConversationId, AfterSeq: h.AfterSeq, BeforeSeq: h.BeforeSeq, Limit: int(h.Limit)})
			res := &magpiepb.HistoryResponse{LastSeq: last}
			for _, m := range msgs {
				res.Messages = append(res.Messages, MessagePB(m))
			}
			res.Messages = fitHistory(res.Messages, h.BeforeSeq > 0)
			answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_HistoryResult{HistoryResult: res}}, err)
		})
	case *magpiepb.Envelope_Online:
		go s.withUser(id, answer, func(ctx context.Context, id Identity) {
			users, err := s.Online(ctx)
			res := &magpiepb.OnlineResponse{}
			for _, u := range users {
				res.Users = append(res.Users, &magpiepb.OnlineUser{UserId: u.UserID, Username: u.Username, Devices: u.Devices})
			}
			answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_OnlineResult{OnlineResult: res}}, err)
		})
	case *magpiepb.Envelope_Ping:
		answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_Pong{Pong: &magpiepb.Pong{Time: b.Ping.Time}}}, nil)
	default:
		reply(errorEnvelope(rid, &Error{Code: wire.CodeUnknownCommand, Msg: "unknown command"}))
	}
}

// ackAnswer answers a send, recall or edit with its send_ack.
func ackAnswer(answer func(*magpiepb.Envelope, error)) func(Ack, error) {
	return func(a Ack, err error) {
		answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{
			ConversationId: a.ConversationID, Seq: a.Seq, ClientMsgId: a.ClientMsgID, SentAt: a.SentAt.UnixMilli(), Duplicate: a.Duplicate,
		}}}, err)
	}
}

// withUser fills in the username (cached) and runs fn with a deadline.
func (s *Service) withUser(id Identity, answer func(*magpiepb.Envelope, error), fn func(context.Context, Identity)) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	name, err := s.usernameOf(ctx, id.UserID)
	if err != nil {
		answer(nil, err)
		return
	}
	id.Username = name
	fn(ctx, id)
}

func (s *Service) usernameOf(ctx context.Context, uid int64) (string, error) {
	if v, ok := s.ids.Load(uid); ok {
		return v.(string), nil
	}
	u, err := s.store.UserByID(ctx, uid)
	if err != nil {
		return "", err
	}
	s.ids.Store(uid, u.Username)
	return u.Username, nil
}

func errorEnvelope(id uint64, err error) []byte {
	return encode(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Error{Error: &magpiepb.Error{
		Code: uint32(Code(err)), Message: Message(err), RetryAfterMs: uint32(RetryAfter(err)),
	}}})
}

// BusHandler adapts the Service to cluster.LogicHandler.
type BusHandler struct{ *Service }

func (h BusHandler) Authenticate(ctx context.Context, req *clusterpb.AuthRequest) *clusterpb.AuthReply {
	return h.AuthenticateConn(ctx, req)
}
