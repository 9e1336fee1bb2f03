package rules

import (
	"time"

	"github.com/magpie-im/magpie/internal/store"
)

// Sender is what a send's rules need to know about its sender, as the
// transaction loaded it after locking the conversation.
type Sender struct {
	Role       store.Role // groups
	MutedUntil time.Time  // groups: this member's mute
	Blocked    bool       // private: the peer blocked the sender
	Friends    bool       // private: the peer has the sender as a friend
}

// Send is one message about to get a seq.
type Send struct {
	Kind            store.MessageKind
	Group           bool
	Private         bool // a private chat with someone else (not a note to self)
	Sender          Sender
	GroupMutedUntil time.Time // the whole group's mute
	RequireFriend   bool      // --require-friendship
	At              time.Time
}

// MaySend applies mutes, blocks and friendship. A recall passes mutes:
// taking something back is always allowed.
func MaySend(s Send) *Refusal {
	if s.Group && s.Kind != store.KindRecall {
		if s.Sender.MutedUntil.After(s.At) {
			return &Refusal{Reason: Muted, Until: s.Sender.MutedUntil}
		}
		if s.GroupMutedUntil.After(s.At) && !moderator(s.Sender.Role) {
			return &Refusal{Reason: GroupMuted, Until: s.GroupMutedUntil}
		}
	}
	if s.Private {
		return MayStartPrivate(s.Sender.Blocked, s.Sender.Friends, s.RequireFriend)
	}
	return nil
}

// MayStartPrivate applies the block and friendship rules to a private
// chat, also before its conversation exists: a refused sender must not
// leave an empty conversation in the blocker's list.
func MayStartPrivate(blocked, friends, requireFriend bool) *Refusal {
	switch {
	case blocked:
		return Refuse(Blocked)
	case requireFriend && !friends:
		return Refuse(NotFriends)
	}
	return nil
}

// Original is the message a recall or edit refers to.
type Original struct {
	Found    bool // a message with that seq exists
	Seq      uint64
	SenderID int64
	SentAt   time.Time
	Kind     store.MessageKind
	Recalled bool
}

// Change is a recall or an edit of Original.
type Change struct {
	Kind      store.MessageKind // KindRecall or KindEdit
	SenderID  int64
	Role      store.Role // groups: the sender's role; "" in private chats
	JoinedSeq uint64     // the sender's window starts after it
	Window    time.Duration
	At        time.Time
	Original  Original
}

// MayChange decides whether the sender may recall or edit the original:
// their own text or file message within the recall window; in groups the
// owner and admins may also recall anyone's message at any time.
func MayChange(c Change) *Refusal {
	o := c.Original
	if !o.Found || o.Seq <= c.JoinedSeq || o.Recalled {
		return Refuse(NoSuchMessage) // none, outside the sender's window, or gone
	}
	if o.Kind != store.KindText && o.Kind != store.KindFile {
		return Refuse(NotChangeable)
	}
	own := o.SenderID == c.SenderID
	inWindow := c.Window > 0 && c.At.Sub(o.SentAt) <= c.Window
	switch {
	case own && inWindow:
		return nil
	case c.Kind == store.KindRecall && moderator(c.Role):
		return nil
	case own:
		return Refuse(RecallWindow)
	}
	return Refuse(NotYours)
}

// IsChange reports whether a message kind changes an earlier message.
func IsChange(k store.MessageKind) bool { return k == store.KindRecall || k == store.KindEdit }

// Cursors are a member's receipt cursors and the conversation's last seq.
type Cursors struct {
	Delivered, Read, Last uint64
}

// MoveCursor moves a delivered or read cursor to seq: never backwards,
// never beyond the last seq, and a read implies delivered, so that
// read ≤ delivered ≤ last always holds.
func MoveCursor(c Cursors, kind store.CursorKind, seq uint64) (Cursors, *Refusal) {
	if seq > c.Last {
		return c, Refuse(SeqOutOfRange)
	}
	c.Delivered = max(c.Delivered, seq)
	if kind == store.Read {
		c.Read = max(c.Read, seq)
	}
	return c, nil
}

func moderator(r store.Role) bool { return r == store.RoleOwner || r == store.RoleAdmin }
