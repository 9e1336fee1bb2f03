package logic

import (
	"context"
	"errors"
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// Hooks let integrations (webhooks) watch events and veto messages. The
// webhook package implements it; nil means no hooks.
type Hooks interface {
	// BeforeSend may veto a message before it is stored by returning an
	// error (use Vetoed). It is called on the send path, so it must bound
	// its own time and decide itself whether a failure allows the message.
	BeforeSend(ctx context.Context, m OutgoingMessage) error
	// BeforeAdd may veto a friendship or a group membership before it is
	// stored, the same way (Vetoed).
	BeforeAdd(ctx context.Context, a AddRequest) error
	// After reports something that happened. It must not block: queue
	// and deliver later.
	After(e Event)
}

// OutgoingMessage is a message about to be stored.
type OutgoingMessage struct {
	From           string `json:"from"`
	FromID         int64  `json:"from_id"`
	ToUser         string `json:"to_user,omitempty"`
	ToGroup        string `json:"to_group,omitempty"`
	ConversationID string `json:"conversation_id"`
	ClientMsgID    string `json:"client_msg_id"`
	Text           string `json:"text"`
	FileID         string `json:"file_id,omitempty"`
}

// AddRequest is a friend add or a group member add about to be stored:
// a friend request or accept (Kind "friend": Actor adds User), or a
// group's create with members, add, join, join request or approval
// (Kind "member": Users would join GroupID; "" for a group being made).
type AddRequest struct {
	Kind    string   `json:"kind"`
	Actor   string   `json:"actor"`
	ActorID int64    `json:"actor_id"`
	User    string   `json:"user,omitempty"`
	GroupID string   `json:"group_id,omitempty"`
	Users   []string `json:"users,omitempty"`
}

// beforeAdd asks the app's before-add hook about a, if it has one.
func (s *Service) beforeAdd(ctx context.Context, app int64, a AddRequest) error {
	if h := s.hooksFor(app); h != nil {
		return h.BeforeAdd(ctx, a)
	}
	return nil
}

// Event is one thing that happened, as sent to webhooks.
type Event struct {
	Type string    `json:"type"` // message.stored, message.recalled, message.edited, group.created, group.member_added, group.member_removed, group.member_left, group.role_changed, group.updated, group.dissolved, group.join_requested, friend.requested, friend.accepted, friend.declined, friend.removed, user.blocked, user.unblocked, user.updated
	At   time.Time `json:"at"`
	Data any       `json:"data"`
}

// Vetoed is the error a BeforeSend hook returns to refuse a message.
func Vetoed(reason string) error {
	if reason == "" {
		reason = "message refused by policy"
	}
	return forbidden(reason, ErrVetoed)
}

// beforeSend asks the before-send hook about m, unless m retries a message
// already stored: that one was allowed when it was stored (and may have
// been delivered), so its sender gets the original ACK (returned here),
// never a veto for a committed message. given says whether the client
// chose m.ClientMsgID; a generated one is never a retry. The lookup costs
// one indexed read, only when a hook is configured; a retry racing with
// its first attempt misses it, asks the hook, and the store's own
// duplicate check answers it with the original once the hook allows it.
func (s *Service) beforeSend(ctx context.Context, app int64, m OutgoingMessage, given bool) (*Ack, error) {
	hooks := s.hooksFor(app)
	if hooks == nil {
		return nil, nil
	}
	if given {
		stored, err := s.store.MessageByClientID(ctx, m.FromID, m.ClientMsgID)
		switch {
		case err == nil:
			return &Ack{ConversationID: stored.ConversationID, Seq: stored.Seq, ClientMsgID: stored.ClientMsgID,
				SentAt: stored.SentAt, Duplicate: true}, nil
		case !errors.Is(err, store.ErrNotFound):
			return nil, unavailable("message not checked, retry", 200*time.Millisecond, err)
		}
	}
	return nil, hooks.BeforeSend(ctx, m)
}

// hooksFor is an app's hooks, the veto hooks and the event webhooks: the
// server's (--before-send-url, --before-add-url, --webhook-urls) for the
// default app, each other app's own (its settings) for it, so that no app's
// messages or events reach another's URLs. It never waits: another app's
// settings come from the node's last loaded app list.
func (s *Service) hooksFor(app int64) Hooks {
	if appOrDefault(app) == store.DefaultApp {
		return s.cfg.Hooks
	}
	if s.cfg.AppHooks == nil {
		return nil
	}
	a, ok := s.cachedApp(app)
	if !ok {
		return nil
	}
	return s.cfg.AppHooks(a.ID, a.Settings)
}

// AppHooks returns the hooks of an app other than the default for its
// settings (webhook URLs and secret, before-send and before-add URLs), or
// nil when it has none (webhook.Apps.For). Config.AppHooks; nil: other
// apps have no hooks.
type AppHooks func(app int64, st store.AppSettings) Hooks

// emit hands an event of an app to its hooks, if any.
func (s *Service) emit(app int64, typ string, data any) {
	if h := s.hooksFor(app); h != nil {
		h.After(Event{Type: typ, At: s.now(), Data: data})
	}
}
