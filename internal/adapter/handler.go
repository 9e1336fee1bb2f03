package adapter

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// Handler serves a logic node on the bus (it implements
// cluster.LogicHandler; the adapter does not import cluster, so the gateway
// that reads the table does not link NATS through it): it decodes what
// gateways forward, dispatches through the command table and encodes the
// answers.
type Handler struct{ svc *logic.Service }

// New returns the bus side of svc.
func New(svc *logic.Service) *Handler { return &Handler{svc: svc} }

// Authenticate answers a gateway's AuthRequest with AuthOK or an Error.
func (h *Handler) Authenticate(ctx context.Context, req *clusterpb.AuthRequest) *clusterpb.AuthReply {
	res, err := h.svc.AuthenticateConn(ctx, req.Token, req.Conn)
	if err != nil {
		return &clusterpb.AuthReply{Envelope: errorEnvelope(0, err)}
	}
	id := res.Identity
	return &clusterpb.AuthReply{Conn: res.Conn, Envelope: envelope.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_AuthOk{AuthOk: &magpiepb.AuthOK{
		UserId: id.UserID, Username: id.Username, SessionId: id.SessionID, Device: id.Device, HeartbeatSeconds: res.HeartbeatSecs,
	}}})}
}

// Handle answers one client request forwarded by a gateway. It returns
// quickly: ordered commands go to their connection's lane, the others to
// logic's bounded pool of read requests (Service.Read).
func (h *Handler) Handle(req *clusterpb.Request, reply func([]byte)) {
	if req.ConnEnded && req.Conn != nil {
		h.svc.ConnEnded(req.Conn)
		reply(envelope.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Ok{Ok: &magpiepb.Ok{}}}))
		return
	}
	env := new(magpiepb.Envelope)
	if req.Conn == nil || proto.Unmarshal(req.Envelope, env) != nil {
		reply(errorEnvelope(0, &logic.Error{Kind: logic.KindUndecodable, Msg: "undecodable request"}))
		return
	}
	h.HandleEnvelope(req.Conn, env, reply)
}

// HandleEnvelope is Handle for a request already decoded: the gateway of
// the same process (serve) hands over the envelope it read, so nothing is
// encoded or decoded between the two. env belongs to the handler from
// now on; conn is only read.
func (h *Handler) HandleEnvelope(conn *clusterpb.ConnRef, env *magpiepb.Envelope, reply func([]byte)) {
	if conn == nil || env == nil {
		reply(errorEnvelope(0, &logic.Error{Kind: logic.KindUndecodable, Msg: "undecodable request"}))
		return
	}
	cmd := Lookup(env)
	if cmd == nil || cmd.ByGateway {
		reply(errorEnvelope(env.Id, &logic.Error{Kind: logic.KindUnknownCommand, Msg: "unknown command"}))
		return
	}
	id, err := h.svc.Arrived(conn)
	if err != nil {
		reply(errorEnvelope(env.Id, err))
		return
	}
	cmd.call(h, &request{svc: h.svc, conn: conn, id: id, rid: env.Id, reply: reply}, env)
}

// request is one forwarded request on its way through logic.
type request struct {
	svc   *logic.Service
	conn  *clusterpb.ConnRef
	id    logic.Identity
	rid   uint64
	reply func([]byte)
}

// Fail answers with an error (logic.Failer).
func (r *request) Fail(err error) { r.reply(errorEnvelope(r.rid, err)) }

func (r *request) answer(body *magpiepb.Envelope, err error) {
	if err != nil {
		r.Fail(err)
		return
	}
	body.Id = r.rid
	r.reply(envelope.Marshal(body))
}

// ack answers a send, recall or edit with its send_ack.
func (r *request) ack(a logic.Ack, err error) {
	if err != nil {
		r.Fail(err)
		return
	}
	if a.ScheduledID > 0 {
		r.answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{
			ClientMsgId: a.ClientMsgID, Duplicate: a.Duplicate, ScheduledId: a.ScheduledID, SendAt: a.SendAt.UnixMilli(),
		}}}, nil)
		return
	}
	r.answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{
		ConversationId: a.ConversationID, Seq: a.Seq, ClientMsgId: a.ClientMsgID, SentAt: a.SentAt.UnixMilli(), Duplicate: a.Duplicate,
	}}}, nil)
}

func (r *request) ordered(prepare func(context.Context, logic.Identity) (queue func())) {
	r.svc.Ordered(r.conn, r.id, r, prepare)
}

func (r *request) read(fn func(context.Context, logic.Identity)) { r.svc.Read(r.id, r, fn) }

func errorEnvelope(id uint64, err error) []byte {
	return envelope.Marshal(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Error{Error: &magpiepb.Error{
		Code: uint32(logic.Code(err)), Message: logic.Message(err), RetryAfterMs: uint32(logic.RetryAfter(err)),
	}}})
}

// fitHistory trims a history page to one frame: from the end of an
// ascending page read after a seq, from the start of one read before a seq
// (the newest messages are the point of those).
func fitHistory(msgs []*magpiepb.Message, newest bool) []*magpiepb.Message {
	budget := logic.FrameBudget
	if newest {
		for i := len(msgs) - 1; i >= 0; i-- {
			if budget -= size(msgs[i]); budget < 0 && i < len(msgs)-1 {
				return msgs[i+1:]
			}
		}
		return msgs
	}
	for i, m := range msgs {
		if budget -= size(m); budget < 0 && i > 0 {
			return msgs[:i]
		}
	}
	return msgs
}

// size is a message's share of an encoded answer (with field overhead).
func size(m proto.Message) int { return proto.Size(m) + 8 }
