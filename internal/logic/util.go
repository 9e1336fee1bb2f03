package logic

import (
	"sort"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

func encode(env *magpiepb.Envelope) []byte {
	b, err := proto.Marshal(env)
	if err != nil {
		panic("logic: encode envelope: " + err.Error()) // only on a programming error
	}
	return b
}

func byGateway(conns []*clusterpb.ConnRef) map[string][]uint64 {
	out := make(map[string][]uint64, 1)
	for _, c := range conns {
		out[c.Gateway] = append(out[c.Gateway], c.Conn)
	}
	return out
}

func sortOnline(u []OnlineUser) {
	sort.Slice(u, func(i, j int) bool { return u[i].Username < u[j].Username })
}

// MessagePB converts a stored message for the wire.
func MessagePB(m store.Message) *magpiepb.Message {
	pm := &magpiepb.Message{
		ConversationId: m.ConversationID, Seq: m.Seq, SenderId: m.SenderID, Sender: m.Sender,
		ClientMsgId: m.ClientMsgID, Text: m.Text, SentAt: m.SentAt.UnixMilli(),
		Kind: magpiepb.MessageKind(m.Kind), RefSeq: m.RefSeq, Recalled: m.Recalled,
	}
	if !m.EditedAt.IsZero() {
		pm.EditedAt = m.EditedAt.UnixMilli()
	}
	if f := m.File; f != nil {
		pm.File = &magpiepb.FileRef{Id: f.ID, Name: f.Name, ContentType: f.ContentType, Size: f.Size}
	}
	if e := m.Event; e != nil {
		pm.Event = &magpiepb.GroupEvent{Type: e.Type, ActorId: e.ActorID, Actor: e.Actor, UserIds: e.UserIDs, Usernames: e.Usernames, Detail: e.Detail}
	}
	return pm
}
