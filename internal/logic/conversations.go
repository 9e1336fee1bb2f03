package logic

import (
	"context"
	"errors"
	"math"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

func validConversationID(id string) error {
	if err := wire.ValidID(id, wire.MaxConversationID); err != nil {
		return badRequest("conversation_id: " + err.Error())
	}
	return nil
}

// Conversations lists the user's conversations, most recent first.
func (s *Service) Conversations(ctx context.Context, id Identity) ([]store.Conversation, error) {
	return s.store.Conversations(ctx, id.UserID)
}

// History returns a page of a conversation's messages.
func (s *Service) History(ctx context.Context, id Identity, q store.MessageQuery) ([]store.Message, uint64, error) {
	if err := validConversationID(q.ConversationID); err != nil {
		return nil, 0, err
	}
	if q.Limit <= 0 {
		q.Limit = wire.DefaultPageLimit
	}
	if q.Limit > wire.MaxPageLimit {
		q.Limit = wire.MaxPageLimit
	}
	last, err := s.visibleLastSeq(ctx, id, q.ConversationID)
	if err != nil {
		return nil, 0, err
	}
	msgs, err := s.store.Messages(ctx, id.UserID, q)
	return msgs, last, err
}

// visibleLastSeq is the conversation's last seq for a current member, and
// the seq they left at for a former one: a removed member still reads the
// history of their window, and nothing after it.
func (s *Service) visibleLastSeq(ctx context.Context, id Identity, convID string) (uint64, error) {
	conv, err := s.store.Conversation(ctx, id.UserID, convID)
	if err == nil {
		return conv.LastSeq, nil
	}
	if !errors.Is(err, store.ErrNotMember) {
		return 0, err
	}
	w, werr := s.store.MemberWindow(ctx, id.UserID, convID)
	if werr != nil || !w.Left {
		return 0, err
	}
	return w.LeftSeq, nil
}

// MoveCursor records a delivered or read receipt and tells the other
// members and the user's other devices when the cursor moved.
func (s *Service) MoveCursor(ctx context.Context, id Identity, convID string, kind store.CursorKind, seq uint64, origin *clusterpb.ConnRef) (store.Cursors, error) {
	if err := validConversationID(convID); err != nil {
		return store.Cursors{}, err
	}
	if kind != store.Delivered && kind != store.Read {
		return store.Cursors{}, badRequest("receipt kind must be delivered or read")
	}
	cur, err := s.moveCursor(ctx, store.CursorMove{UserID: id.UserID, ConversationID: convID, Kind: kind, Seq: seq})
	if err != nil || !cur.Moved {
		return cur, err
	}
	members, err := s.membersOf(ctx, convID)
	if err != nil {
		return cur, nil // the receipt is stored; notification is best effort
	}
	r := &magpiepb.Receipt{ConversationId: convID, UserId: id.UserID, Username: id.Username}
	if kind == store.Read {
		r.Kind, r.Seq = magpiepb.ReceiptKind_RECEIPT_KIND_READ, cur.ReadSeq
	} else {
		r.Kind, r.Seq = magpiepb.ReceiptKind_RECEIPT_KIND_DELIVERED, cur.DeliveredSeq
	}
	// Every member's devices would receive every member's receipts: n²
	// pushes in a big group. Beyond SmallGroup members only the reader's
	// own devices are told; others ask GET .../messages/{seq}/reads.
	if isGroupID(convID) && len(members) > SmallGroup {
		members = []int64{id.UserID}
	}
	var conns []*clusterpb.ConnRef
	for _, m := range members {
		conns = s.presence.AppendConns(conns, m)
	}
	conns = without(conns, origin)
	if len(conns) > 0 {
		s.publish(conns, encode(&magpiepb.Envelope{Body: &magpiepb.Envelope_Receipt{Receipt: r}}))
	}
	return cur, nil
}

// frameBudget is what a sync or history answer may fill: a frame's limit
// minus room for the envelope. Counting messages alone is not enough: 500
// messages of a few hundred bytes, or five of the largest, overflow a frame
// and the client could then never catch up.
const frameBudget = wire.MaxFrame - 4<<10

// pbSize is a message's share of an encoded answer (with field overhead).
func pbSize(m proto.Message) int { return proto.Size(m) + 8 }

// Sync returns what the device is missing after its cursors: up to limit
// messages over all conversations, and every conversation's state, within
// one frame. More says to call again with the advanced cursors.
func (s *Service) Sync(ctx context.Context, id Identity, cursors map[string]uint64, limit int) (*magpiepb.SyncResponse, error) {
	if limit <= 0 || limit > wire.MaxPageLimit {
		limit = wire.MaxPageLimit
	}
	convs, err := s.store.Conversations(ctx, id.UserID)
	if err != nil {
		return nil, err
	}
	res := &magpiepb.SyncResponse{}
	budget := frameBudget
	current := make(map[string]bool, len(convs))
	for _, c := range convs {
		current[c.ID] = true
		st := ConversationPB(c)
		if budget-pbSize(st) < frameBudget/2 {
			res.More = true // the states of older conversations come next time
			break
		}
		budget -= pbSize(st)
		res.Conversations = append(res.Conversations, st)
	}
	// Groups the user left since the device's cursor: the rest of the
	// membership window still belongs on the device.
	for cid := range cursors {
		if !current[cid] && isGroupID(cid) {
			convs = append(convs, store.Conversation{ID: cid, Kind: store.Group, LastSeq: math.MaxUint64})
		}
	}
	for _, c := range convs {
		after := cursors[c.ID]
		if c.LastSeq <= after {
			continue
		}
		if limit == 0 || budget <= 0 {
			res.More = true
			break
		}
		msgs, err := s.store.Messages(ctx, id.UserID, store.MessageQuery{ConversationID: c.ID, AfterSeq: after, Limit: limit})
		if errors.Is(err, store.ErrNotMember) && !current[c.ID] {
			continue // never a member: nothing to send
		}
		if err != nil {
			return nil, err
		}
		n := 0
		for _, m := range msgs {
			pm := MessagePB(m)
			pm.Peer = c.Peer
			if budget -= pbSize(pm); budget < 0 && n > 0 {
				res.More = true
				break
			}
			res.Messages = append(res.Messages, pm)
			n++
		}
		limit -= n
		if n < len(msgs) || (n > 0 && current[c.ID] && msgs[n-1].Seq < c.LastSeq) {
			res.More = true
		}
	}
	return res, nil
}

// fitHistory trims a history page to one frame: from the end of an
// ascending page read after a seq, from the start of one read before a seq
// (the newest messages are the point of those).
func fitHistory(msgs []*magpiepb.Message, newest bool) []*magpiepb.Message {
	budget := frameBudget
	if newest {
		for i := len(msgs) - 1; i >= 0; i-- {
			if budget -= pbSize(msgs[i]); budget < 0 && i < len(msgs)-1 {
				return msgs[i+1:]
			}
		}
		return msgs
	}
	for i, m := range msgs {
		if budget -= pbSize(m); budget < 0 && i > 0 {
			return msgs[:i]
		}
	}
	return msgs
}

// ConversationPB converts a conversation for the wire.
func ConversationPB(c store.Conversation) *magpiepb.ConversationState {
	return &magpiepb.ConversationState{
		ConversationId: c.ID, LastSeq: c.LastSeq, DeliveredSeq: c.DeliveredSeq, ReadSeq: c.ReadSeq,
		PeerDeliveredSeq: c.PeerDeliveredSeq, PeerReadSeq: c.PeerReadSeq, Peer: c.Peer,
		Kind: string(c.Kind), Name: c.Name, Pinned: c.Pinned, Muted: c.Muted, Unread: c.Unread(),
	}
}
