package logic

// Broadcast: a transient text to every online connection, for server
// admins. Not stored: its ack has seq 0 and no conversation.

import (
	"context"
	"strings"

	"github.com/magpie-im/magpie/internal/store"
)

// mayBroadcast: the --admins users, or anyone with --allow-broadcast.
func (s *Service) mayBroadcast(username string) bool {
	if s.cfg.AllowBroadcast {
		return true
	}
	for _, a := range s.cfg.Admins {
		if strings.EqualFold(strings.TrimSpace(a), username) {
			return true
		}
	}
	return false
}

// broadcast sends a transient text to every connection online. It is not
// stored, so the ack has seq 0 and no conversation.
// prepareBroadcast checks a broadcast (rights, body, the before-send
// hook) and returns the step that delivers it, which sendSteps runs in
// the connection's order.
func (s *Service) prepareBroadcast(ctx context.Context, from Identity, req SendRequest) (deliver func() Ack, err error) {
	switch {
	case req.ToUser != "" || req.ToGroup != "" || req.FileID != "":
		return nil, invalid("a broadcast has only text: no to_user, to_group or file_id")
	case !s.mayBroadcast(from.Username):
		return nil, forbidden("broadcast is allowed for server admins only", store.ErrForbidden)
	}
	if err := validBody(req.Text, false); err != nil {
		return nil, err
	}
	if req.ClientMsgID, err = clientMsgID(req.ClientMsgID); err != nil {
		return nil, err
	}
	if s.cfg.Hooks != nil {
		if err := s.cfg.Hooks.BeforeSend(ctx, OutgoingMessage{From: from.Username, FromID: from.UserID,
			ClientMsgID: req.ClientMsgID, Text: req.Text}); err != nil {
			return nil, err
		}
	}
	return func() Ack {
		now := s.now()
		s.deliverTransient(nil, true, &store.Message{
			SenderID: from.UserID, Sender: from.Username, ClientMsgID: req.ClientMsgID, Text: req.Text, SentAt: now,
		})
		return Ack{ClientMsgID: req.ClientMsgID, SentAt: now}
	}, nil
}

// ChangeRequest recalls or edits the message Seq of a conversation.
type ChangeRequest struct {
	ConversationID string
	Seq            uint64
	Text           string // edits: the new text
	ClientMsgID    string
}
