// Package adapter maps the client protocol (proto/magpiepb envelopes) to
// logic's calls, so logic speaks domain types only. Its command table is
// the one place that says, for each request a client may send, how the
// gateway treats it and which logic call it dispatches to: the gateway's
// classification (Lookup) and the logic node's dispatch (Handler.Handle)
// both read it.
//
// Imports: gateway → adapter → logic, envelope → store, magpiepb, wire.
// The gateway only reads the table's first columns; the call column runs on
// logic nodes.
//
// Everything here is safe for concurrent use.
package adapter

import (
	"context"
	"reflect"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/magpie-im/magpie/internal/adapter/envelope"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// Command is one row of the table: a request a client may send.
type Command struct {
	Name string // the envelope's body field
	// Auth: the connection must have authenticated first. Only auth
	// itself does not need it.
	Auth bool
	// ByGateway: the gateway answers it and never forwards it (auth starts
	// the session, ping keeps it alive). Every other command is forwarded
	// to logic as it is.
	ByGateway bool
	// Ordered: logic runs it in arrival order per connection (on its
	// lane); others run concurrently.
	Ordered bool

	// call is the logic side; nil when ByGateway. It answers through r.
	call func(h *Handler, r *request, env *magpiepb.Envelope)
}

// commands is the table. A new command is one row here (and its body in
// magpie.proto); docs/protocol.md lists them.
var commands = []*Command{
	{Name: "auth", ByGateway: true},
	{Name: "ping", Auth: true, ByGateway: true},
	{Name: "send", Auth: true, Ordered: true, call: send},
	{Name: "recall", Auth: true, Ordered: true, call: recall},
	{Name: "edit", Auth: true, Ordered: true, call: edit},
	{Name: "receipt", Auth: true, call: receipt},
	{Name: "sync", Auth: true, call: sync},
	{Name: "history", Auth: true, call: history},
	{Name: "online", Auth: true, call: online},
	{Name: "typing", Auth: true, call: typing},
}

// byBody indexes the table by the type of the envelope's body (a type
// switch's speed without a second list of the commands); the names are
// checked against the schema when the program starts.
var byBody = func() map[reflect.Type]*Command {
	oneof := (&magpiepb.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	m := make(map[reflect.Type]*Command, len(commands))
	for _, c := range commands {
		f := oneof.Fields().ByName(protoreflect.Name(c.Name))
		if f == nil {
			panic("adapter: command " + c.Name + " is not an Envelope body")
		}
		if (c.call == nil) != c.ByGateway {
			panic("adapter: command " + c.Name + ": a forwarded command needs a call, a gateway's has none")
		}
		env := &magpiepb.Envelope{}
		r := env.ProtoReflect()
		r.Set(f, r.NewField(f))
		m[reflect.TypeOf(env.Body)] = c
	}
	return m
}()

// Lookup returns the command env carries, or nil for a body a client may
// not send: an unknown or missing body, or a server body (auth_ok,
// message, kick, ...), all answered with CodeUnknownCommand.
func Lookup(env *magpiepb.Envelope) *Command {
	if env.Body == nil {
		return nil
	}
	return byBody[reflect.TypeOf(env.Body)]
}

// The call column: decode the body into a domain call, answer in
// envelopes.

func send(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetSend()
	r.ordered(func(ctx context.Context, id logic.Identity) func() {
		var sendAt time.Time
		if b.SendAt != 0 {
			sendAt = time.UnixMilli(b.SendAt)
		}
		return h.svc.SendSteps(ctx, id, logic.SendRequest{ToUser: b.ToUser, ToGroup: b.ToGroup, Text: b.Text, ClientMsgID: b.ClientMsgId,
			FileID: b.FileId, Broadcast: b.Broadcast, SendAt: sendAt, ReplyTo: b.ReplyTo}, r.conn, r.ack)
	})
}

func recall(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetRecall()
	r.ordered(func(ctx context.Context, id logic.Identity) func() {
		return h.svc.ChangeSteps(ctx, id, store.KindRecall, logic.ChangeRequest{ConversationID: b.ConversationId, Seq: b.Seq, ClientMsgID: b.ClientMsgId}, r.conn, r.ack)
	})
}

func edit(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetEdit()
	r.ordered(func(ctx context.Context, id logic.Identity) func() {
		return h.svc.ChangeSteps(ctx, id, store.KindEdit, logic.ChangeRequest{ConversationID: b.ConversationId, Seq: b.Seq, Text: b.Text, ClientMsgID: b.ClientMsgId}, r.conn, r.ack)
	})
}

func receipt(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetReceipt()
	// The read slot is held only to queue the move (and to learn the
	// username); the answer comes once the cursor loop committed it.
	r.read(func(_ context.Context, id logic.Identity) {
		if r.conn.SessionExpiry > 0 && store.CursorKind(b.Kind) == store.Delivered {
			h.svc.DeviceDelivered(r.conn, b.ConversationId, b.Seq) // an MQTT persistent session's own position too
		}
		h.svc.MoveCursorThen(id, b.ConversationId, store.CursorKind(b.Kind), b.Seq, r.conn, func(_ store.Cursors, err error) {
			r.answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_Ok{Ok: &magpiepb.Ok{}}}, err)
		})
	})
}

func sync(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetSync()
	r.read(func(ctx context.Context, id logic.Identity) {
		if len(b.Cursors) > wire.MaxCursors {
			r.Fail(&logic.Error{Kind: logic.KindTooLarge, Msg: "too many cursors", Err: logic.ErrBadRequest})
			return
		}
		cur := make(map[string]uint64, len(b.Cursors))
		for _, k := range b.Cursors {
			cur[k.ConversationId] = k.Seq
		}
		run := h.svc.Sync
		if r.conn.SessionExpiry > 0 { // an MQTT persistent session: from its own position
			run = func(ctx context.Context, id logic.Identity, cur map[string]uint64, limit int) (logic.SyncResult, error) {
				return h.svc.DeviceSync(ctx, id, r.conn, cur, limit)
			}
		}
		res, err := run(ctx, id, cur, int(b.Limit))
		if err != nil {
			r.Fail(err)
			return
		}
		out := &magpiepb.SyncResponse{More: res.More}
		for _, c := range res.Conversations {
			out.Conversations = append(out.Conversations, envelope.Conversation(c))
		}
		for _, m := range res.Messages {
			out.Messages = append(out.Messages, envelope.Message(m.Message, m.Peer))
		}
		r.answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_SyncResult{SyncResult: out}}, nil)
	})
}

func history(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetHistory()
	r.read(func(ctx context.Context, id logic.Identity) {
		msgs, last, err := h.svc.History(ctx, id, store.MessageQuery{ConversationID: b.ConversationId, AfterSeq: b.AfterSeq, BeforeSeq: b.BeforeSeq, Limit: int(b.Limit)})
		res := &magpiepb.HistoryResponse{LastSeq: last}
		for _, m := range msgs {
			res.Messages = append(res.Messages, envelope.Message(m, ""))
		}
		res.Messages = fitHistory(res.Messages, b.BeforeSeq > 0)
		r.answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_HistoryResult{HistoryResult: res}}, err)
	})
}

func online(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetOnline()
	r.read(func(ctx context.Context, id logic.Identity) {
		var users []logic.OnlineUser
		var err error
		res := &magpiepb.OnlineResponse{}
		if b.GetPrefix() == "" && b.GetLimit() == 0 && b.GetCursor() == "" {
			users, err = h.svc.Online(ctx, id) // the whole list, as before paging
		} else {
			var page logic.OnlinePage
			page, err = h.svc.OnlinePage(ctx, id, logic.OnlineQuery{Prefix: b.GetPrefix(), Limit: int(min(b.GetLimit(), logic.MaxOnlinePage)), Cursor: b.GetCursor()})
			users, res.NextCursor = page.Users, page.NextCursor
		}
		for _, u := range users {
			res.Users = append(res.Users, &magpiepb.OnlineUser{UserId: u.UserID, Username: u.Username, Devices: u.Devices})
		}
		r.answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_OnlineResult{OnlineResult: res}}, err)
	})
}

func typing(h *Handler, r *request, env *magpiepb.Envelope) {
	b := env.GetTyping()
	r.read(func(ctx context.Context, id logic.Identity) {
		err := h.svc.Typing(ctx, id, b.ConversationId, b.Stopped, r.conn)
		r.answer(&magpiepb.Envelope{Body: &magpiepb.Envelope_Ok{Ok: &magpiepb.Ok{}}}, err)
	})
}
