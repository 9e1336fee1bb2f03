package logic

// Recall and edit: changes of an earlier message, queued like a send.

import (
	"context"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// Recall stores a RECALL of req.Seq and waits for its ack. A change is
// stored and fanned out like a send, so it draws from the same per-user
// budget (allowSend), on HTTP as on the long connection.
func (s *Service) Recall(ctx context.Context, from Identity, req ChangeRequest) (Ack, error) {
	if err := s.allowSend(from.UserID); err != nil {
		return Ack{}, err
	}
	return s.wait(ctx, func(done func(Ack, error)) { s.ChangeAsync(ctx, from, store.KindRecall, req, nil, done) })
}

// Edit stores an EDIT of req.Seq and waits for its ack.
func (s *Service) Edit(ctx context.Context, from Identity, req ChangeRequest) (Ack, error) {
	if err := s.allowSend(from.UserID); err != nil {
		return Ack{}, err
	}
	return s.wait(ctx, func(done func(Ack, error)) { s.ChangeAsync(ctx, from, store.KindEdit, req, nil, done) })
}

func (s *Service) wait(ctx context.Context, start func(done func(Ack, error))) (Ack, error) {
	type result struct {
		ack Ack
		err error
	}
	ch := make(chan result, 1)
	start(func(a Ack, err error) { ch <- result{a, err} })
	select {
	case r := <-ch:
		return r.ack, r.err
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	}
}

// ChangeAsync queues a RECALL or EDIT through the commit loop, like a send:
// who may change what is decided by the store in the same transaction
// that stores the change and alters the original.
func (s *Service) ChangeAsync(ctx context.Context, from Identity, kind store.MessageKind, req ChangeRequest, origin *clusterpb.ConnRef, done func(Ack, error)) {
	if queue := s.changeSteps(ctx, from, kind, req, origin, done); queue != nil {
		queue()
	}
}

// changeSteps is ChangeAsync in the two steps of a laneItem (see sendSteps).
func (s *Service) changeSteps(ctx context.Context, from Identity, kind store.MessageKind, req ChangeRequest, origin *clusterpb.ConnRef, done func(Ack, error)) func() {
	p, err := s.prepareChange(ctx, from, kind, req)
	if err != nil {
		done(Ack{}, err)
		return nil
	}
	return func() { s.enqueue(p, origin, done) }
}

func (s *Service) prepareChange(ctx context.Context, from Identity, kind store.MessageKind, req ChangeRequest) (*pendingSend, error) {
	if err := validConversationID(req.ConversationID); err != nil {
		return nil, err
	}
	if req.Seq == 0 {
		return nil, invalid("seq is required")
	}
	if kind == store.KindEdit {
		if err := validBody(req.Text, false); err != nil {
			return nil, err
		}
	} else {
		req.Text = ""
	}
	given := req.ClientMsgID != ""
	var err error
	if req.ClientMsgID, err = clientMsgID(req.ClientMsgID); err != nil {
		return nil, err
	}
	p := &pendingSend{from: from, req: store.AppendRequest{
		ConversationID: req.ConversationID, SenderID: from.UserID, ClientMsgID: req.ClientMsgID,
		Text: req.Text, Kind: kind, RefSeq: req.Seq, RecallWindow: s.cfg.RecallWindow,
	}}
	if !isGroupID(req.ConversationID) {
		// A private chat: delivery needs the other member.
		peer, ok := privatePeer(req.ConversationID, from.UserID)
		if !ok {
			return nil, &Error{Kind: KindNotMember, Msg: "not a member of the conversation", Err: store.ErrNotMember}
		}
		name, err := s.usernameOf(ctx, peer)
		if err != nil {
			return nil, err
		}
		p.peer, p.peerID = name, peer
	}
	if kind == store.KindEdit {
		m := OutgoingMessage{From: from.Username, FromID: from.UserID, ConversationID: req.ConversationID,
			ClientMsgID: req.ClientMsgID, Text: req.Text}
		if p.peerID != 0 {
			m.ToUser = p.peer
		} else {
			m.ToGroup = req.ConversationID
		}
		if p.stored, err = s.beforeSend(ctx, from.AppID, m, given); err != nil {
			return nil, err
		}
	}
	return p, nil
}
