package logic

// Group messages: preparing a send to a group, and the group stage of
// fan-out (the member cache; one envelope, one publish per gateway).

import (
	"context"
	"sync"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// SmallGroup is the largest group whose members receive each other's
// receipts live (see MoveCursor).
const SmallGroup = 100

// prepareGroup readies a group message. Membership and mutes are checked
// by the store in the transaction that assigns the seq, not here.
func (s *Service) prepareGroup(ctx context.Context, from Identity, req SendRequest, given bool) (*pendingSend, error) {
	if err := validGroupID(req.ToGroup); err != nil {
		return nil, err
	}
	file, err := s.fileRef(ctx, from, req.FileID)
	if err != nil {
		return nil, err
	}
	stored, err := s.beforeSend(ctx, from.AppID, OutgoingMessage{
		From: from.Username, FromID: from.UserID, ToGroup: req.ToGroup, ConversationID: req.ToGroup,
		ClientMsgID: req.ClientMsgID, Text: req.Text, FileID: req.FileID,
	}, given)
	if err != nil {
		return nil, err
	}
	return &pendingSend{from: from, stored: stored, req: store.AppendRequest{
		ConversationID: req.ToGroup, SenderID: from.UserID, ClientMsgID: req.ClientMsgID,
		Text: req.Text, Kind: fileKind(file), File: file, RefSeq: req.ReplyTo,
	}}, nil
}

// groupMembers caches the member lists of groups across commit batches, so
// a busy group's members are not read from the store for every message.
//
// An entry is used only for the message right after the one it was last
// used or loaded for (seq+1): every change of a group's member set stores an
// event with the group's next seq in the transaction that makes the change
// (store.Groups: CreateGroup, ChangeGroup), so if no seq lies between the
// two, the member set cannot have changed. Any other seq — an event, a
// message committed by another commit loop or another logic node, a seq
// fanned out out of order — reloads the list. A removed member therefore
// never receives a message whose seq is above their removal's, on any node,
// without the cache having to hear about the removal.
type groupMembers struct {
	mu      sync.Mutex
	groups  map[string]memberList
	entries int // member ids held, to bound the memory
}

type memberList struct {
	ids []int64 // shared, never modified
	seq uint64  // valid for the message seq+1
}

// maxCachedMembers bounds the cache (8 bytes each); it is emptied past it.
const maxCachedMembers = 1 << 20

// next returns the cached members of conv for the message seq, if valid,
// and makes the entry valid for seq+1.
func (c *groupMembers) next(conv string, seq uint64) ([]int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.groups[conv]
	if !ok || e.seq+1 != seq {
		return nil, false
	}
	e.seq = seq
	c.groups[conv] = e
	return e.ids, true
}

// put caches ids, read from the store after the message seq committed.
func (c *groupMembers) put(conv string, seq uint64, ids []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil || c.entries+len(ids) > maxCachedMembers {
		c.groups, c.entries = make(map[string]memberList), 0
	}
	if old, ok := c.groups[conv]; ok {
		c.entries -= len(old.ids)
	}
	c.groups[conv] = memberList{ids: ids, seq: seq}
	c.entries += len(ids)
}

// deliverGroup pushes m to every online device of every member but the
// sending connection: one envelope, encoded once, one publish per gateway.
func (s *Service) deliverGroup(conns []*clusterpb.ConnRef, p *pendingSend, m store.Message) []*clusterpb.ConnRef {
	ids, ok := s.members.next(m.ConversationID, m.Seq)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		var err error
		ids, err = s.store.Members(ctx, m.ConversationID)
		cancel()
		if err != nil {
			// Stored and acked: devices will sync it.
			s.log.Warn("group fan-out: members", "group", m.ConversationID, "err", err)
			return conns
		}
		s.members.put(m.ConversationID, m.Seq, ids)
	}
	for _, id := range ids {
		conns = s.presence.AppendConns(conns, id)
	}
	conns = without(conns, p.origin)
	if len(conns) > 0 {
		m.Sender = p.from.Username
		s.publish(conns, s.enc.Message(m, ""))
	}
	return conns
}

// emitStored reports a committed message to the hooks.
func (s *Service) emitStored(p *pendingSend, m store.Message) {
	ev := StoredEvent{
		ConversationID: m.ConversationID, Seq: m.Seq, From: p.from.Username, FromID: m.SenderID,
		ToUser: p.peer, ClientMsgID: m.ClientMsgID, Text: m.Text, SentAt: m.SentAt.UnixMilli(), RefSeq: m.RefSeq,
	}
	if isGroupID(m.ConversationID) {
		ev.ToGroup = m.ConversationID
	}
	if m.File != nil {
		ev.FileID = m.File.ID
	}
	switch m.Kind {
	case store.KindRecall:
		s.emit(p.from.AppID, "message.recalled", ev)
	case store.KindEdit:
		s.emit(p.from.AppID, "message.edited", ev)
	default:
		s.emit(p.from.AppID, "message.stored", ev)
	}
}
