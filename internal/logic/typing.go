package logic

import (
	"context"
	"strconv"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// Typing indicators are transient: never stored, pushed once to the
// devices online now, best effort.
const (
	// TypingRate and TypingBurst bound one user's typing notices (all
	// conversations, all devices, per logic node): a client sends one
	// every few seconds while the user types, so this only stops a flood.
	TypingRate  = 2
	TypingBurst = 6
)

// Typing tells the other current members of convID that the user is
// typing (or stopped). Only a current member may; in a private chat a
// block either way drops it silently (the blocked side learns nothing). In
// groups larger than SmallGroup nothing is pushed: a notice per keystroke
// burst to thousands of devices is not worth its cost.
func (s *Service) Typing(ctx context.Context, id Identity, convID string, stopped bool, origin *clusterpb.ConnRef) error {
	if err := validConversationID(convID); err != nil {
		return err
	}
	if ok, wait := s.typings.allow(strconv.FormatInt(id.UserID, 10), s.now()); !ok {
		return rateLimited("too many typing notices", wait)
	}
	w, err := s.store.MemberWindow(ctx, id.UserID, convID)
	if err != nil {
		return explain(err)
	}
	if w.Left {
		return explain(store.ErrNotMember)
	}
	members, err := s.membersOf(ctx, convID)
	if err != nil {
		return explain(err)
	}
	if isGroupID(convID) && len(members) > SmallGroup {
		return nil
	}
	var conns []*clusterpb.ConnRef
	for _, m := range members {
		if m == id.UserID {
			continue // not to my own devices
		}
		if !isGroupID(convID) {
			if blocked, err := s.store.BlockedEither(ctx, id.UserID, m); err != nil {
				return explain(err)
			} else if blocked {
				return nil
			}
		}
		conns = s.presence.AppendConns(conns, m)
	}
	conns = without(conns, origin)
	if len(conns) > 0 {
		s.publish(conns, s.enc.Typing(convID, id.UserID, id.Username, stopped))
	}
	return nil
}
