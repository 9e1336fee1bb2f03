// Package envelope turns logic's domain values (stored messages,
// conversations, receipts, kicks) into client envelopes (proto/magpiepb).
// It is the adapter's encoding half, kept apart from the command table so
// that logic's own tests can encode what logic pushes without an import
// cycle; logic itself sees only the logic.Encoder interface that Encoder
// implements.
//
// Everything here is safe for concurrent use.
package envelope

import (
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// Message converts a stored message for the wire. peer is the other side
// of a private conversation as the receiving device sees it ("" for a
// group).
func Message(m store.Message, peer string) *magpiepb.Message {
	pm := new(magpiepb.Message)
	fillMessage(pm, &m, peer)
	return pm
}

func fillMessage(pm *magpiepb.Message, m *store.Message, peer string) {
	pm.ConversationId, pm.Seq, pm.SenderId, pm.Sender = m.ConversationID, m.Seq, m.SenderID, m.Sender
	pm.ClientMsgId, pm.Text, pm.SentAt = m.ClientMsgID, m.Text, m.SentAt.UnixMilli()
	pm.Kind, pm.RefSeq, pm.Recalled, pm.Peer = magpiepb.MessageKind(m.Kind), m.RefSeq, m.Recalled, peer
	if !m.EditedAt.IsZero() {
		pm.EditedAt = m.EditedAt.UnixMilli()
	}
	if f := m.File; f != nil {
		pm.File = &magpiepb.FileRef{Id: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size}
	}
	if e := m.Event; e != nil {
		pm.Event = &magpiepb.GroupEvent{Type: e.Type, ActorId: e.ActorID, Actor: e.Actor, UserIds: e.UserIDs, Usernames: e.Usernames, Detail: e.Detail}
	}
}

// Conversation converts a conversation's state for the wire.
func Conversation(c store.Conversation) *magpiepb.ConversationState {
	return &magpiepb.ConversationState{
		ConversationId: c.ID, LastSeq: c.LastSeq, DeliveredSeq: c.DeliveredSeq, ReadSeq: c.ReadSeq,
		PeerDeliveredSeq: c.PeerDeliveredSeq, PeerReadSeq: c.PeerReadSeq, Peer: c.Peer,
		Kind: string(c.Kind), Name: c.Name, Pinned: c.Pinned, Muted: c.Muted, Unread: c.Unread(),
	}
}

// Encoder implements logic.Encoder: each push is encoded once, and logic
// shares the bytes among every Delivery of it. The zero value is ready.
type Encoder struct{}

// msgs recycles the Message a push is built in: encoding needs it only
// for the length of proto.Marshal, and the send path pushes one or two per
// message.
var msgs = sync.Pool{New: func() any { return new(magpiepb.Message) }}

func (Encoder) message(m *store.Message, peer string, transient bool) []byte {
	pm := msgs.Get().(*magpiepb.Message)
	fillMessage(pm, m, peer)
	pm.Transient = transient
	b := marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: pm}})
	proto.Reset(pm)
	msgs.Put(pm)
	return b
}

// Message encodes a stored message push.
func (e Encoder) Message(m store.Message, peer string) []byte { return e.message(&m, peer, false) }

// Transient encodes a message that is not stored (broadcasts,
// notifications): seq 0, transient set.
func (e Encoder) Transient(m store.Message) []byte {
	m.Seq = 0
	return e.message(&m, "", true)
}

// Receipt encodes a receipt push: userID's kind cursor of conversation
// convID moved to seq.
func (Encoder) Receipt(convID string, userID int64, username string, kind store.CursorKind, seq uint64) []byte {
	return marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{
		ConversationId: convID, UserId: userID, Username: username, Kind: magpiepb.ReceiptKind(kind), Seq: seq,
	}}})
}

// Conversation encodes a conversation state push.
func (Encoder) Conversation(c store.Conversation) []byte {
	return marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Conversation{Conversation: Conversation(c)}})
}

// Typing encodes a typing notice push.
func (Encoder) Typing(convID string, userID int64, username string, stopped bool) []byte {
	return marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Typing{Typing: &magpiepb.Typing{
		ConversationId: convID, UserId: userID, Username: username, Stopped: stopped,
	}}})
}

// Notice encodes a notice push.
func (Encoder) Notice(n store.Notice) []byte {
	return marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Notice{Notice: &magpiepb.Notice{
		Type: n.Type, At: n.At.UnixMilli(), ActorId: n.ActorID, Actor: n.Actor, GroupId: n.GroupID, GroupName: n.GroupName,
		ScheduledId: n.ScheduledID, Reason: n.Reason, Code: n.Code, ToUser: n.ToUser, ToGroup: n.ToGroup,
	}}})
}

// Kick encodes a kick. It is the one place logic's kicks are built:
// reconnect comes from the code's action (wire.Code.KickReconnect), as on
// the gateway.
func (Encoder) Kick(code wire.Code, reason string) []byte {
	return marshal(Kick(code, reason))
}

// Kick is the envelope of a kick; see Encoder.Kick.
func Kick(code wire.Code, reason string) *magpiepb.Envelope {
	return &magpiepb.Envelope{Body: &magpiepb.Envelope_Kick{Kick: &magpiepb.Kick{
		Code: uint32(code), Reason: reason, Reconnect: code.KickReconnect(),
	}}}
}

// MessageSize is a message's share of an encoded answer, field overhead
// included: logic fills a sync answer up to a frame with it.
func (Encoder) MessageSize(m store.Message, peer string) int {
	pm := msgs.Get().(*magpiepb.Message)
	fillMessage(pm, &m, peer)
	n := proto.Size(pm) + 8
	proto.Reset(pm)
	msgs.Put(pm)
	return n
}

// ConversationSize is a conversation state's share of an encoded answer.
func (Encoder) ConversationSize(c store.Conversation) int {
	return proto.Size(Conversation(c)) + 8
}

// Marshal encodes an envelope built by the adapter.
func Marshal(env *magpiepb.Envelope) []byte { return marshal(env) }

func marshal(env *magpiepb.Envelope) []byte {
	b, err := proto.Marshal(env)
	if err != nil {
		panic("envelope: encode: " + err.Error()) // only on a programming error
	}
	return b
}
