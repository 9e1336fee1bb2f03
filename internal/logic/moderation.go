package logic

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Moderation for the admin API: disable, delete and list an app's users,
// and remove any message of the app's conversations.

// ErrAccountDisabled is a login of a disabled user.
var ErrAccountDisabled = forbidden("account disabled", store.ErrForbidden)

// MaxUserPage is the most users one ListUsers page holds.
const MaxUserPage = 1000

// adminUser finds a user of the app by name, from the store (not the
// names cache: moderation must see the current state).
func (s *Service) adminUser(ctx context.Context, app int64, name string) (store.User, error) {
	if err := wire.ValidName(name); err != nil {
		return store.User{}, invalid(err.Error())
	}
	u, err := s.store.UserByName(ctx, appOrDefault(app), name)
	if errors.Is(err, store.ErrNotFound) {
		return u, noUser(name)
	}
	return u, err
}

// endSessions closes the live connections of sessions the store has
// already revoked.
func (s *Service) endSessions(ctx context.Context, sessions []store.Session, reason string) {
	for _, sess := range sessions {
		s.revoke(ctx, sess, KindLoggedOut, reason)
	}
}

// SetUserDisabled disables a user of the app (every session ends at once,
// and logins are refused with ErrAccountDisabled) or enables it again.
func (s *Service) SetUserDisabled(ctx context.Context, app int64, username string, disabled bool) (store.User, error) {
	u, err := s.adminUser(ctx, app, username)
	if err != nil {
		return u, err
	}
	active, err := s.store.ActiveSessions(ctx, u.ID, s.now())
	if err != nil {
		return u, err
	}
	if err := s.store.SetUserDisabled(ctx, u.ID, disabled, s.now()); err != nil {
		return u, explain(err)
	}
	s.forgetUser(u.ID)
	if disabled {
		s.endSessions(ctx, active, "account disabled")
	}
	return s.store.UserByID(ctx, u.ID)
}

// DeleteUser deletes a user of the app: its sessions end at once, its
// name is free again, its contacts are gone, and its messages are kept or
// (erase) blanked as removed by an admin.
func (s *Service) DeleteUser(ctx context.Context, app int64, username string, erase bool) (store.User, error) {
	u, err := s.adminUser(ctx, app, username)
	if err != nil {
		return u, err
	}
	active, err := s.store.ActiveSessions(ctx, u.ID, s.now())
	if err != nil {
		return u, err
	}
	if err := s.store.DeleteUser(ctx, u.ID, erase, s.now()); err != nil {
		return u, explain(err)
	}
	s.forgetUser(u.ID)
	s.endSessions(ctx, active, "account deleted")
	s.leaveGroups(ctx, u)
	return u, nil
}

// leaveGroups takes a deleted user out of the groups it was a member of,
// as if it had left (the members see a "left" event), but those it owns:
// they keep their owner until one is made (ErrLastOwner otherwise). A
// failure is logged: the deletion itself is done.
func (s *Service) leaveGroups(ctx context.Context, u store.User) {
	groups, err := s.store.UserGroups(ctx, u.ID)
	if err != nil {
		s.log.Warn("deleted user's groups", "user", u.ID, "err", err)
		return
	}
	id := Identity{AppID: appOrDefault(u.AppID), UserID: u.ID, Username: u.Username}
	for _, g := range groups {
		if g.OwnerID == u.ID {
			continue
		}
		if _, err := s.changeGroup(ctx, id, g.ID, store.GroupChange{Op: store.OpLeave, Event: store.Event{Type: "left",
			UserIDs: []int64{u.ID}, Usernames: []string{u.Username}, Detail: "account deleted"}}); err != nil {
			s.log.Warn("deleted user leaves a group", "user", u.ID, "group", g.ID, "err", err)
		}
	}
}

// ListUsers pages through the app's users by id: cursor is the last
// page's next ("" for the first), match a part of the name.
func (s *Service) ListUsers(ctx context.Context, app int64, match, cursor string, limit int) ([]store.User, string, error) {
	var after int64
	if cursor != "" {
		n, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || n < 0 {
			return nil, "", invalid("cursor must be the next_cursor of the last page")
		}
		after = n
	}
	if limit <= 0 {
		limit = 100
	}
	if limit > MaxUserPage {
		return nil, "", invalid(fmt.Sprintf("limit must be at most %d", MaxUserPage))
	}
	if len(match) > wire.MaxUsername {
		return nil, "", invalid(fmt.Sprintf("query must be at most %d bytes", wire.MaxUsername))
	}
	users, err := s.store.ListUsers(ctx, appOrDefault(app), store.UserQuery{Match: match, AfterID: after, Limit: limit + 1})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(users) > limit {
		users = users[:limit]
		next = strconv.FormatInt(users[limit-1].ID, 10)
	}
	return users, next, nil
}

// RemoveMessage removes a text or file message of one of the app's
// conversations as a moderator: blanked, shown as removed by an admin
// (its event), and a RECALL saying so goes to the members' devices.
func (s *Service) RemoveMessage(ctx context.Context, app int64, conversationID string, seq uint64) (store.Message, error) {
	if err := validConversationID(conversationID); err != nil {
		return store.Message{}, err
	}
	if seq == 0 {
		return store.Message{}, invalid("seq is required")
	}
	var members []int64
	if isGroupID(conversationID) {
		g, err := s.groupOfApp(ctx, app, conversationID)
		if err != nil {
			return store.Message{}, err
		}
		for _, m := range g.Members {
			members = append(members, m.UserID)
		}
	} else {
		a, b, ok := parsePrivateID(conversationID)
		if !ok {
			return store.Message{}, invalid("not a conversation id")
		}
		owner, err := s.appOf(ctx, a)
		if errors.Is(err, store.ErrNotFound) || err == nil && owner != appOrDefault(app) {
			return store.Message{}, notFound("no such conversation", store.ErrNotFound)
		} else if err != nil {
			return store.Message{}, err
		}
		members = []int64{a, b}
	}
	recall, err := s.store.RemoveMessage(ctx, conversationID, seq, s.now())
	if err != nil {
		return store.Message{}, explain(err)
	}
	var conns []*clusterpb.ConnRef
	for _, uid := range members {
		conns = s.presence.AppendConns(conns, uid)
	}
	if len(conns) > 0 {
		s.publish(conns, s.enc.Message(recall, ""))
	}
	ev := StoredEvent{ConversationID: conversationID, Seq: recall.Seq, From: recall.Sender, FromID: recall.SenderID,
		RefSeq: seq, SentAt: recall.SentAt.UnixMilli(), RemovedByAdmin: true}
	if isGroupID(conversationID) {
		ev.ToGroup = conversationID
	}
	s.emit(app, "message.recalled", ev)
	return recall, nil
}

// forgetUser drops a user from this node's names cache, under whatever
// spelling it was looked up, and has the other logic nodes do the same
// (Config.OnForget), so a send to a deleted user's name is refused on
// every node at once.
func (s *Service) forgetUser(id int64) {
	s.ForgetUser(id)
	if s.cfg.OnForget != nil {
		s.cfg.OnForget(id)
	}
}

// ForgetUser drops a user from this node's names cache: another node
// changed it (Config.OnForget).
func (s *Service) ForgetUser(id int64) {
	s.namesGen.Add(1)
	s.names.Range(func(k, v any) bool {
		if v.(store.User).ID == id {
			s.names.Delete(k)
		}
		return true
	})
}
