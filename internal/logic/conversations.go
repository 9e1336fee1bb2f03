package logic

import (
	"context"
	"errors"
	"math"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

func validConversationID(id string) error {
	if err := wire.ValidID(id, wire.MaxConversationID); err != nil {
		return invalid("conversation_id: " + err.Error())
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
// members and the user's other devices when the cursor moved; it returns
// once the move is committed (see MoveCursorThen).
func (s *Service) MoveCursor(ctx context.Context, id Identity, convID string, kind store.CursorKind, seq uint64, origin *clusterpb.ConnRef) (store.Cursors, error) {
	done := make(chan store.CursorResult, 1)
	s.MoveCursorThen(id, convID, kind, seq, origin, func(c store.Cursors, err error) { done <- store.CursorResult{Cursors: c, Err: err} })
	select {
	case r := <-done:
		return r.Cursors, r.Err
	case <-ctx.Done():
		return store.Cursors{}, ctx.Err()
	}
}

// MoveCursorThen is MoveCursor without the wait: it queues the move and
// returns; done gets the outcome once the move is committed and the
// members are told (on the cursor loop's answer goroutine: done must not
// block), or at once for a bad request or a full queue.
func (s *Service) MoveCursorThen(id Identity, convID string, kind store.CursorKind, seq uint64, origin *clusterpb.ConnRef, done func(store.Cursors, error)) {
	if err := validConversationID(convID); err != nil {
		done(store.Cursors{}, err)
		return
	}
	if kind != store.Delivered && kind != store.Read {
		done(store.Cursors{}, invalid("receipt kind must be delivered or read"))
		return
	}
	s.queueCursor(store.CursorMove{UserID: id.UserID, ConversationID: convID, Kind: kind, Seq: seq}, func(r store.CursorResult) {
		if r.Err == nil && r.Cursors.Moved {
			s.tellCursor(id, convID, kind, r.Cursors, origin)
		}
		done(r.Cursors, r.Err)
	})
}

// tellCursor tells the members' devices and the user's other devices
// that the user's cursor moved. Best effort: the receipt is stored.
func (s *Service) tellCursor(id Identity, convID string, kind store.CursorKind, cur store.Cursors, origin *clusterpb.ConnRef) {
	ctx, cancel := context.WithTimeout(s.life, requestTimeout)
	defer cancel()
	members, err := s.membersOf(ctx, convID)
	if err != nil {
		return
	}
	seq := cur.DeliveredSeq
	if kind == store.Read {
		seq = cur.ReadSeq
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
		s.publish(conns, s.enc.Receipt(convID, id.UserID, id.Username, kind, seq))
	}
}

// firstSyncRows is how many messages of one conversation a sync reads
// first (see Sync).
const firstSyncRows = 16

// FrameBudget is what a sync or history answer may fill: a frame's limit
// minus room for the envelope. Counting messages alone is not enough: 500
// messages of a few hundred bytes, or five of the largest, overflow a frame
// and the client could then never catch up.
const FrameBudget = wire.MaxFrame - 4<<10

// SyncResult is what a device is missing: More says to call again with
// the advanced cursors.
type SyncResult struct {
	Conversations []store.Conversation
	Messages      []PeerMessage
	More          bool
}

// PeerMessage is a message with the other side of its private
// conversation as the device sees it ("" in a group).
type PeerMessage struct {
	store.Message
	Peer string
}

// Sync returns what the device is missing after its cursors: up to limit
// messages over all conversations, and every conversation's state, within
// one frame (as the Encoder measures it).
func (s *Service) Sync(ctx context.Context, id Identity, cursors map[string]uint64, limit int) (SyncResult, error) {
	for k := range cursors {
		if err := validConversationID(k); err != nil {
			return SyncResult{}, err
		}
	}
	return s.sync(ctx, id, cursors, limit, true)
}

// sync is Sync; states false leaves the conversations' states out.
func (s *Service) sync(ctx context.Context, id Identity, cursors map[string]uint64, limit int, states bool) (SyncResult, error) {
	if limit <= 0 || limit > wire.MaxPageLimit {
		limit = wire.MaxPageLimit
	}
	convs, err := s.store.Conversations(ctx, id.UserID)
	if err != nil {
		return SyncResult{}, err
	}
	var res SyncResult
	budget := FrameBudget
	current := make(map[string]bool, len(convs))
	for _, c := range convs {
		current[c.ID] = true
		if !states {
			continue
		}
		n := s.enc.ConversationSize(c)
		if budget-n < FrameBudget/2 {
			res.More = true // the states of older conversations come next time
			break
		}
		budget -= n
		res.Conversations = append(res.Conversations, c)
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
		// The first read of a conversation takes few rows, later ones as
		// many as the budget holds at the sizes read so far: a frame holds
		// only 7 messages of 8 KiB, and reading 500 of them to send 7 made
		// a device catching up on big messages read its history ~70 times
		// over (the slow consumer's reconnect outlasted 30 s at load).
		q := store.MessageQuery{ConversationID: c.ID, AfterSeq: after, Limit: min(limit, firstSyncRows)}
		if current[c.ID] {
			q.Limit = int(min(uint64(q.Limit), c.LastSeq-after))
		}
		sent, size := 0, 0
	reads:
		for {
			msgs, err := s.store.Messages(ctx, id.UserID, q)
			if errors.Is(err, store.ErrNotMember) && !current[c.ID] {
				break // never a member: nothing to send
			}
			if err != nil {
				return SyncResult{}, err
			}
			for i, m := range msgs {
				n := s.enc.MessageSize(m, c.Peer)
				if budget -= n; budget < 0 && sent > 0 {
					res.More = true
					break reads
				}
				res.Messages = append(res.Messages, PeerMessage{Message: m, Peer: c.Peer})
				sent, size, limit = sent+1, size+n, limit-1
				if limit == 0 && i < len(msgs)-1 {
					res.More = true
					break reads
				}
			}
			if current[c.ID] && len(msgs) > 0 && msgs[len(msgs)-1].Seq >= c.LastSeq {
				break // all of it
			}
			if len(msgs) < q.Limit {
				if sent > 0 && current[c.ID] && res.Messages[len(res.Messages)-1].Seq < c.LastSeq {
					res.More = true
				}
				break
			}
			if limit == 0 || budget <= 0 {
				res.More = true
				break
			}
			q.AfterSeq = msgs[len(msgs)-1].Seq
			q.Limit = min(limit, budget/max(1, size/max(1, sent))+1)
		}
	}
	return res, nil
}
