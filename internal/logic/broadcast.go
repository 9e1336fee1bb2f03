package logic

// Broadcast: a transient text to every online connection, for server
// admins. Not stored: its ack has seq 0 and no conversation.

import (
	"context"
	"strings"

	"github.com/magpie-im/magpie/internal/store"
)

// mayBroadcast: the --admins users (names of the default app: another
// app's user of the same name is someone else), or anyone with
// --allow-broadcast. Either way a broadcast reaches the sender's app only.
func (s *Service) mayBroadcast(id Identity) bool {
	if s.cfg.AllowBroadcast {
		return true
	}
	if appOrDefault(id.AppID) != store.DefaultApp {
		return false
	}
	for _, a := range s.cfg.Admins {
		if strings.EqualFold(strings.TrimSpace(a), id.Username) {
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
	case !s.mayBroadcast(from):
		return nil, forbidden("broadcast is allowed for server admins only", store.ErrForbidden)
	}
	if err := validBody(req.Text, false); err != nil {
		return nil, err
	}
	if req.ClientMsgID, err = clientMsgID(req.ClientMsgID); err != nil {
		return nil, err
	}
	if hooks := s.hooksFor(from.AppID); hooks != nil {
		if err := hooks.BeforeSend(ctx, OutgoingMessage{From: from.Username, FromID: from.UserID,
			ClientMsgID: req.ClientMsgID, Text: req.Text}); err != nil {
			return nil, err
		}
	}
	everyone, ids, err := s.audience(ctx, from.AppID)
	if err != nil {
		return nil, err
	}
	return func() Ack {
		now := s.now()
		s.deliverTransient(ids, everyone, &store.Message{
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

// audience is who a broadcast of an app reaches: with one app, every
// connection (each gateway fans it out itself); with several, the app's
// online users only.
func (s *Service) audience(ctx context.Context, app int64) (everyone bool, ids []int64, err error) {
	if !s.multiApp(ctx) {
		return true, nil, nil
	}
	for id := range s.presence.Online() {
		ids = append(ids, id)
	}
	ids, err = s.inApp(ctx, appOrDefault(app), ids)
	return false, ids, err
}
