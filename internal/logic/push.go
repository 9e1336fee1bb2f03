package logic

import (
	"context"
	"errors"
	"fmt"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// MaxPushUsers is the most to_users entries one push may name.
const MaxPushUsers = 1000

// maxPushSender bounds the sender name of a transient push (from, or the key id).
const maxPushSender = 64

// MaxPushID bounds a push's idempotency key (PushRequest.PushID).
const MaxPushID = 48

// PushRequest is a server push from a backend (POST /v1/push), already
// authenticated by its signature. Exactly one target: ToUsers, ToGroup or
// Everyone (transient only).
type PushRequest struct {
	AppID     int64  // the app of the signing key: every target and From are its (0: the default app)
	KeyID     string // the signing key; the sender of a transient push without From
	ToUsers   []string
	ToGroup   string
	Everyone  bool
	Text      string
	From      string // stored pushes: an existing user who sends the messages
	Transient bool
	// PushID, optional, makes a stored push idempotent: each message's
	// client_msg_id is "push:<PushID>:<target>" (target: the username or
	// group id), so a retry with the same PushID and From stores nothing
	// new and gets the original acks, marked Duplicate. Without it the
	// ids are random and a retry stores everything again. A transient
	// push carries "push:<PushID>" as its client_msg_id, so receivers can
	// drop a retried notification. 1-MaxPushID printable ASCII, no spaces.
	PushID string
}

// PushResult says what a push did. Transient pushes fill Delivered (the
// connections it was handed to; best effort), stored ones Stored and Acks.
type PushResult struct {
	Delivered int
	Stored    int
	Acks      []PushAck
}

// PushAck is the outcome of one stored message of a push.
type PushAck struct {
	To  string // username or group id
	Ack Ack
	Err error
}

// Push delivers a backend's message: transient ones straight to online
// devices as NOTIFICATION messages (seq 0, never stored), stored ones
// through the normal pipeline as messages from From, one per target.
func (s *Service) Push(ctx context.Context, req PushRequest) (PushResult, error) {
	if err := s.allowPush(req.KeyID); err != nil {
		return PushResult{}, err
	}
	if err := validBody(req.Text, false); err != nil {
		return PushResult{}, err
	}
	targets := 0
	for _, set := range []bool{len(req.ToUsers) > 0, req.ToGroup != "", req.Everyone} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		return PushResult{}, invalid("set exactly one of to_users, to_group and everyone")
	}
	if len(req.ToUsers) > MaxPushUsers {
		return PushResult{}, tooLarge(fmt.Sprintf("to_users: at most %d users", MaxPushUsers))
	}
	if req.PushID != "" {
		if err := wire.ValidToken(req.PushID, MaxPushID); err != nil {
			return PushResult{}, invalid("push_id: " + err.Error())
		}
	}
	if req.ToGroup != "" {
		if !isGroupID(req.ToGroup) {
			return PushResult{}, invalid("to_group: not a group id")
		}
	}
	users, err := s.pushUsers(ctx, req.AppID, req.ToUsers)
	if err != nil {
		return PushResult{}, err
	}
	if req.Transient {
		return s.pushTransient(ctx, req, users)
	}
	return s.pushStored(ctx, req, users)
}

// pushUsers resolves and de-duplicates usernames; an unknown one fails
// the whole push before anything is sent.
func (s *Service) pushUsers(ctx context.Context, app int64, names []string) ([]store.User, error) {
	out := make([]store.User, 0, len(names))
	seen := make(map[int64]bool, len(names))
	for _, name := range names {
		if wire.ValidName(name) != nil {
			return nil, invalid(fmt.Sprintf("to_users: %q is not a valid username", name))
		}
		u, err := s.userByName(ctx, app, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, notFound("no such user: "+name, err)
		} else if err != nil {
			return nil, err
		}
		if !seen[u.ID] {
			seen[u.ID] = true
			out = append(out, u)
		}
	}
	return out, nil
}

func (s *Service) pushTransient(ctx context.Context, req PushRequest, users []store.User) (PushResult, error) {
	sender := req.From
	if sender == "" {
		sender = req.KeyID
	}
	if err := wire.ValidToken(sender, maxPushSender); err != nil {
		return PushResult{}, invalid("from: " + err.Error())
	}
	msg := &store.Message{
		Kind: store.KindNotification, Sender: sender, Text: req.Text,
		ClientMsgID: "push-" + randomID(12), SentAt: s.now(),
	}
	if req.PushID != "" {
		msg.ClientMsgID = "push:" + req.PushID
	}
	switch {
	case req.Everyone:
		everyone, ids, err := s.audience(ctx, req.AppID)
		if err != nil {
			return PushResult{}, err
		}
		if !everyone {
			return PushResult{Delivered: s.deliverTransient(ids, false, msg)}, nil
		}
		conns := 0
		for _, cs := range s.presence.Online() {
			conns += len(cs)
		}
		s.deliverTransient(nil, true, msg)
		return PushResult{Delivered: conns}, nil
	case req.ToGroup != "":
		// A stored push needs From to be a member, so only a transient
		// one checks the group's app itself.
		if _, err := s.groupOfApp(ctx, req.AppID, req.ToGroup); err != nil {
			return PushResult{}, notFound("no such group", err)
		}
		ids, err := s.store.Members(ctx, req.ToGroup)
		if errors.Is(err, store.ErrNotFound) {
			return PushResult{}, notFound("no such group", err)
		} else if err != nil {
			return PushResult{}, err
		}
		msg.ConversationID = req.ToGroup
		return PushResult{Delivered: s.deliverTransient(ids, false, msg)}, nil
	default:
		ids := make([]int64, len(users))
		for i, u := range users {
			ids[i] = u.ID
		}
		return PushResult{Delivered: s.deliverTransient(ids, false, msg)}, nil
	}
}

func (s *Service) pushStored(ctx context.Context, req PushRequest, users []store.User) (PushResult, error) {
	if req.Everyone {
		return PushResult{}, invalid("everyone is transient only: set transient, or name to_users or to_group")
	}
	if req.From == "" {
		return PushResult{}, invalid("from is required for a stored push")
	}
	from, err := s.userByName(ctx, req.AppID, req.From)
	if errors.Is(err, store.ErrNotFound) || wire.ValidName(req.From) != nil {
		return PushResult{}, invalid("from: no such user")
	} else if err != nil {
		return PushResult{}, err
	}
	id := Identity{AppID: appOrDefault(req.AppID), UserID: from.ID, Username: from.Username}
	sends := make([]SendRequest, 0, len(users)+1)
	if req.ToGroup != "" {
		sends = append(sends, SendRequest{ToGroup: req.ToGroup, Text: req.Text})
	}
	for _, u := range users {
		sends = append(sends, SendRequest{ToUser: u.Username, Text: req.Text})
	}
	if req.PushID != "" {
		// Check every derived id before anything is sent, so a refused
		// push stores nothing.
		for i := range sends {
			cmid := pushClientMsgID(req.PushID, sends[i].ToUser+sends[i].ToGroup)
			if len(cmid) > wire.MaxClientMsgID {
				return PushResult{}, invalid(fmt.Sprintf(
					"push_id: with target %q the message id %q would be %d bytes, limit %d; use a shorter push_id",
					sends[i].ToUser+sends[i].ToGroup, cmid, len(cmid), wire.MaxClientMsgID))
			}
			sends[i].ClientMsgID = cmid
		}
	}
	type result struct {
		i   int
		ack Ack
		err error
	}
	ch := make(chan result, len(sends))
	for i, sr := range sends {
		s.SendAsync(ctx, id, sr, nil, func(a Ack, err error) { ch <- result{i, a, err} })
	}
	res := PushResult{Acks: make([]PushAck, len(sends))}
	var firstErr error
	for range sends {
		var r result
		select {
		case r = <-ch:
		case <-ctx.Done():
			// Messages may still commit; their ACKs are lost with ctx.
			return PushResult{}, ctx.Err()
		}
		to := sends[r.i].ToUser + sends[r.i].ToGroup
		res.Acks[r.i] = PushAck{To: to, Ack: r.ack, Err: r.err}
		if r.err == nil {
			res.Stored++
		} else if firstErr == nil {
			firstErr = r.err
		}
	}
	if res.Stored == 0 {
		return PushResult{}, firstErr
	}
	return res, nil
}

// pushClientMsgID is the client_msg_id of a stored push's message to target
// (a username, as stored, or a group id): the same on every retry.
func pushClientMsgID(pushID, target string) string {
	return "push:" + pushID + ":" + target
}
