package logic

import (
	"context"
	"errors"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// FriendEventData is the data of friend.* and user.* hook events.
type FriendEventData struct {
	User  string `json:"user"`
	Other string `json:"other"`
}

// other resolves the user a friend or block call is about.
func (s *Service) other(ctx context.Context, app int64, name string) (store.User, error) {
	if wire.ValidName(name) != nil {
		return store.User{}, invalid("not a valid username")
	}
	u, err := s.userByName(ctx, app, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, notFound("no such user: "+name, err)
	}
	return u, err
}

func (s *Service) Contacts(ctx context.Context, id Identity) (store.Contacts, error) {
	return s.store.Contacts(ctx, id.UserID)
}

// RequestFriend asks name to be friends; if they had asked already, the
// two become friends at once.
func (s *Service) RequestFriend(ctx context.Context, id Identity, name string) (store.FriendStatus, error) {
	u, err := s.other(ctx, id.AppID, name)
	if err != nil {
		return "", err
	}
	if err := s.beforeAdd(ctx, id.AppID, AddRequest{Kind: "friend", Actor: id.Username, ActorID: id.UserID, User: u.Username}); err != nil {
		return "", err
	}
	st, err := s.store.RequestFriend(ctx, id.UserID, u.ID, s.now())
	if err != nil {
		return "", explain(err)
	}
	typ := "friend.requested"
	if st == store.FriendsNow {
		typ = "friend.accepted"
	}
	s.emit(id.AppID, typ, FriendEventData{User: id.Username, Other: u.Username})
	s.notify([]int64{u.ID}, store.Notice{Type: typ, ActorID: id.UserID, Actor: id.Username}) // store.NoticeFriend*: the event's names
	return st, nil
}

func (s *Service) AcceptFriend(ctx context.Context, id Identity, name string) error {
	return s.friendCall(ctx, id, name, "friend.accepted", func(other int64) error {
		u, err := s.usernameOf(ctx, other)
		if err != nil {
			return err
		}
		if err := s.beforeAdd(ctx, id.AppID, AddRequest{Kind: "friend", Actor: id.Username, ActorID: id.UserID, User: u}); err != nil {
			return err
		}
		if err := s.store.AcceptFriend(ctx, id.UserID, other, s.now()); err != nil {
			return err
		}
		s.notify([]int64{other}, store.Notice{Type: store.NoticeFriendAccepted, ActorID: id.UserID, Actor: id.Username})
		return nil
	})
}

func (s *Service) DeclineFriend(ctx context.Context, id Identity, name string) error {
	return s.friendCall(ctx, id, name, "friend.declined", func(other int64) error { return s.store.DeclineFriend(ctx, id.UserID, other) })
}

func (s *Service) RemoveFriend(ctx context.Context, id Identity, name string) error {
	return s.friendCall(ctx, id, name, "friend.removed", func(other int64) error { return s.store.RemoveFriend(ctx, id.UserID, other) })
}

// Block refuses name's private messages (code blocked) and friend requests.
func (s *Service) Block(ctx context.Context, id Identity, name string) error {
	return s.friendCall(ctx, id, name, "user.blocked", func(other int64) error { return s.store.Block(ctx, id.UserID, other, s.now()) })
}

func (s *Service) Unblock(ctx context.Context, id Identity, name string) error {
	return s.friendCall(ctx, id, name, "user.unblocked", func(other int64) error { return s.store.Unblock(ctx, id.UserID, other) })
}

func (s *Service) friendCall(ctx context.Context, id Identity, name, event string, fn func(other int64) error) error {
	u, err := s.other(ctx, id.AppID, name)
	if err != nil {
		return err
	}
	if err := fn(u.ID); err != nil {
		return explain(err)
	}
	if event != "" {
		s.emit(id.AppID, event, FriendEventData{User: id.Username, Other: u.Username})
	}
	return nil
}

// SetConversationFlags changes the user's pinned and muted flags and
// pushes the new state to the user's other devices.
func (s *Service) SetConversationFlags(ctx context.Context, id Identity, convID string, pinned, muted *bool, origin *clusterpb.ConnRef) (store.Conversation, error) {
	if err := validConversationID(convID); err != nil {
		return store.Conversation{}, err
	}
	if pinned == nil && muted == nil {
		return store.Conversation{}, invalid("nothing to change: set pinned or muted")
	}
	c, err := s.store.SetConversationFlags(ctx, id.UserID, convID, pinned, muted)
	if err != nil {
		return store.Conversation{}, explain(err)
	}
	conns := without(s.presence.AppendConns(nil, id.UserID), origin)
	if len(conns) > 0 {
		s.publish(conns, s.enc.Conversation(c))
	}
	return c, nil
}

// HideConversation takes the conversation out of the user's list until a
// new message arrives (a message after the seq it returns); with clear,
// the user's history of it also starts after that seq. The user's other
// devices see the change on their next list or sync.
func (s *Service) HideConversation(ctx context.Context, id Identity, convID string, clear bool) (uint64, error) {
	if err := validConversationID(convID); err != nil {
		return 0, err
	}
	seq, err := s.store.HideConversation(ctx, id.UserID, convID, clear)
	if err != nil {
		return 0, explain(err)
	}
	return seq, nil
}

// CanSeeFile reports whether the user may download the file: they
// uploaded it, or they can see a message (not recalled) that carries it.
func (s *Service) CanSeeFile(ctx context.Context, id Identity, fileID string) (bool, error) {
	if s.cfg.Files != nil {
		meta, err := s.cfg.Files.Stat(ctx, fileID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		if meta.OwnerID == id.UserID {
			return true, nil
		}
	}
	return s.store.FileVisible(ctx, id.UserID, fileID)
}

// ReadsView says who read one message, by name.
type ReadsView struct {
	Seq         uint64   `json:"seq"`
	ReadCount   int      `json:"read_count"`
	MemberCount int      `json:"member_count"`
	Readers     []string `json:"readers"`
}

// MessageReads tells a member of the conversation who has read seq: the
// other members who could see it and whose read cursor passed it.
func (s *Service) MessageReads(ctx context.Context, id Identity, convID string, seq uint64) (ReadsView, error) {
	if err := validConversationID(convID); err != nil {
		return ReadsView{}, err
	}
	r, err := s.store.MessageReads(ctx, id.UserID, convID, seq)
	if err != nil {
		return ReadsView{}, explain(err)
	}
	v := ReadsView{Seq: r.Seq, ReadCount: len(r.Readers), MemberCount: r.MemberCount, Readers: make([]string, 0, len(r.Readers))}
	for _, uid := range r.Readers {
		name, err := s.usernameOf(ctx, uid)
		if err != nil {
			return ReadsView{}, err
		}
		v.Readers = append(v.Readers, name)
	}
	return v, nil
}
