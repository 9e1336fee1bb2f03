package client

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// State is the state of a Client's long connection, reported to
// Options.OnState.
type State int

const (
	StateConnecting   State = iota + 1 // first login and connection in progress
	StateReady                         // connected, authenticated and synced
	StateReconnecting                  // the connection dropped; trying again with backoff
	StateClosed                        // stopped: Close, Logout, a kick without reconnect, or a fatal error
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateReady:
		return "ready"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "idle"
}

// User is an account.
type User struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
}

// Message is a message of a conversation: a stored one (Seq > 0, delivered
// in seq order) or a transient one (Transient, Seq 0: a broadcast or a
// server push notification, delivered as it arrives and never stored).
//
// RECALL, EDIT and EVENT messages are stream messages like any other: they
// have their own seq and arrive in order. They do not change earlier
// Message values the application holds; History returns originals with
// Recalled or EditedAt set.
type Message struct {
	ConversationID string
	Seq            uint64 // gap-free and increasing within the conversation; 0 if Transient
	SenderID       int64
	Sender         string
	Peer           string // private chats: the other user, from this user's view
	ClientMsgID    string
	Text           string // TEXT; EDIT: the new text; FILE: an optional caption
	SentAt         time.Time
	Own            bool // sent by this user (from another device or an earlier session)

	Kind      MessageKind
	RefSeq    uint64      // RECALL and EDIT: the seq of the message they change; TEXT and FILE: the message this one answers (a reply), or 0
	File      *FileRef    // FILE
	Event     *GroupEvent // EVENT
	Transient bool        // not stored; Seq is 0
	EditedAt  time.Time   // zero unless the message was edited (History)
	Recalled  bool        // the message was recalled; Text and File are cleared (History)
}

// IsGroup reports whether the message belongs to a group conversation.
func (m Message) IsGroup() bool { return IsGroupID(m.ConversationID) }

// IsGroupID reports whether a conversation id names a group ("g_…"). A
// group's id is its conversation's id.
func IsGroupID(id string) bool { return strings.HasPrefix(id, "g_") }

// MessageKind says what a Message is.
type MessageKind int

const (
	KindText         MessageKind = 0
	KindFile         MessageKind = 1 // File is set
	KindRecall       MessageKind = 2 // recalls RefSeq
	KindEdit         MessageKind = 3 // replaces RefSeq's text with Text
	KindEvent        MessageKind = 4 // a group membership or settings change; Event is set
	KindNotification MessageKind = 5 // a server push (transient or stored)
)

var kindNames = []string{"text", "file", "recall", "edit", "event", "notification"}

func (k MessageKind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// UnmarshalJSON accepts a kind as a number or a name ("file", or the
// protobuf enum name "MESSAGE_KIND_FILE"), so HTTP answers decode either way.
func (k *MessageKind) UnmarshalJSON(b []byte) error {
	var n int
	if json.Unmarshal(b, &n) == nil {
		*k = MessageKind(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("magpie: message kind %s", b)
	}
	s = strings.ToLower(strings.TrimPrefix(s, "MESSAGE_KIND_"))
	for i, name := range kindNames {
		if s == name {
			*k = MessageKind(i)
			return nil
		}
	}
	*k = KindText
	return nil
}

// FileRef describes an uploaded file (UploadFile) or the file of a FILE
// message.
type FileRef struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// GroupEvent is a membership or settings change of a group, stored in the
// group's stream as an EVENT message.
type GroupEvent struct {
	// Type is one of created, joined, added, left, removed, role, muted,
	// unmuted, updated, dissolved, owner.
	Type      string
	ActorID   int64
	Actor     string   // who did it
	UserIDs   []int64  // whom it concerns, if anyone
	Usernames []string // the same users' names
	Detail    string   // e.g. the new role or name
}

// ConversationState is a conversation's state as the server pushes it to
// Options.OnConversation when it changes (flags set on another device, for
// example).
type ConversationState struct {
	ID               string
	Kind             string // "private" or "group"
	Name             string // groups: the group's name
	Peer             string // private chats: the other user
	LastSeq          uint64
	DeliveredSeq     uint64 // mine
	ReadSeq          uint64 // mine
	PeerDeliveredSeq uint64 // private chats
	PeerReadSeq      uint64
	Unread           uint64
	Pinned           bool
	Muted            bool
}

// Receipt reports that a user's delivered or read cursor moved. It includes
// this user's other devices (UserID == Client.UserID()).
type Receipt struct {
	ConversationID string
	Kind           ReceiptKind
	Seq            uint64
	UserID         int64
	Username       string
}

// ReceiptKind is Delivered or Read.
type ReceiptKind int

const (
	Delivered ReceiptKind = 1
	Read      ReceiptKind = 2
)

func (k ReceiptKind) String() string {
	switch k {
	case Delivered:
		return "delivered"
	case Read:
		return "read"
	}
	return "unknown"
}

// SendRequest is a message to send. Exactly one of ToUser, ToGroup and
// Broadcast is set. Text is required unless FileID is set (then it is an
// optional caption).
//
// An empty ClientMsgID is replaced by a unique one; set it yourself to make a
// send idempotent across process restarts.
type SendRequest struct {
	ToUser      string
	ToGroup     string // a group id, "g_…"
	Broadcast   bool   // to everyone online: transient, not stored; admins only unless the server allows it
	Text        string
	FileID      string // a file from UploadFile: sends a FILE message
	ClientMsgID string
	// SendAt schedules the message: the server stores it now and sends it
	// then (within its --schedule-horizon, 30 days by default), with a
	// fresh seq; the Ack has ScheduledID and no seq. Zero: send now.
	SendAt time.Time
	// ReplyTo is the seq of an earlier message of the same conversation
	// this one answers: the stored message carries it as RefSeq. Not with
	// Broadcast or SendAt.
	ReplyTo uint64
}

// Ack is the server's confirmation that a message is durably stored.
type Ack struct {
	ConversationID string
	Seq            uint64
	ClientMsgID    string
	SentAt         time.Time
	Duplicate      bool      // the id was seen before; Seq is the original one
	ScheduledID    int64     // a scheduled send (SendAt): its id for CancelScheduled; Seq is 0
	SendAt         time.Time // a scheduled send: when the server sends it
}

// ScheduledMessage is a message waiting to be sent (ScheduledMessages).
type ScheduledMessage struct {
	ID          int64     `json:"id"`
	ToUser      string    `json:"to_user"`
	ToGroup     string    `json:"to_group"`
	Text        string    `json:"text"`
	FileID      string    `json:"file_id"`
	ClientMsgID string    `json:"client_msg_id"`
	SendAt      time.Time `json:"-"`
	CreatedAt   time.Time `json:"-"`
	// Status is ScheduledPending, or ScheduledRefused once the message
	// could not be sent at its time (the sender left the group or was
	// removed, was blocked, the app or a hook forbids it): Code and Reason
	// say why, RefusedAt when. A refused message is never sent; it stays
	// listed until CancelScheduled drops it, or for 7 days.
	Status    string    `json:"status"`
	RefusedAt time.Time `json:"-"`
	Code      wire.Code `json:"-"`
	Reason    string    `json:"reason"`
}

// The statuses of a ScheduledMessage.
const (
	ScheduledPending = "pending"
	ScheduledRefused = "refused"
)

// HistoryQuery selects a page of a conversation: messages after AfterSeq,
// or, if BeforeSeq is set, the latest ones before BeforeSeq. Limit 0 means
// the server's default.
type HistoryQuery struct {
	AfterSeq  uint64
	BeforeSeq uint64
	Limit     int
}

// Typing is a typing notice pushed by the server (Options.OnTyping).
type Typing struct {
	ConversationID string
	UserID         int64
	Username       string
	Stopped        bool // they stopped typing; otherwise show it for TypingShowFor
}

// TypingShowFor is how long a client shows "X is typing…" after a notice
// unless another one renews it; senders repeat it more often than this.
const TypingShowFor = 6 * time.Second

// NoticeType names what a Notice is about. A server may send types this
// SDK does not name: pass them on or ignore them.
type NoticeType string

const (
	NoticeFriendRequested  NoticeType = "friend.requested"     // Actor asks to be friends: AcceptFriend or DeclineFriend
	NoticeFriendAccepted   NoticeType = "friend.accepted"      // Actor and this user are friends now (accepted a request, or added directly)
	NoticeJoinRequested    NoticeType = "group.join_requested" // Actor asks to join GroupID, which this user owns or administers: ApproveJoin or RejectJoin
	NoticeGroupAdded       NoticeType = "group.added"          // Actor added this user to GroupID (made it with them, or approved their request)
	NoticeGroupRemoved     NoticeType = "group.removed"        // Actor removed this user from GroupID
	NoticeScheduledRefused NoticeType = "scheduled.refused"    // the scheduled message ScheduledID could not be sent at its time: Reason, Code
)

// Notice is a live notice pushed to this user's online devices
// (Options.OnNotice). It is transient and best effort: a device offline at
// that moment never gets it, and what it is about stays listed over HTTP
// (FriendRequests in Friends, JoinRequests, Groups, ScheduledMessages).
type Notice struct {
	Type        NoticeType
	At          time.Time
	ActorID     int64  // who did it (friend.*, group.*)
	Actor       string // their username
	GroupID     string // group.*
	GroupName   string
	ScheduledID int64     // scheduled.refused
	Reason      string    // scheduled.refused: why, readable
	Code        wire.Code // scheduled.refused: the error the send got
	ToUser      string    // scheduled.refused: the message's recipient, or
	ToGroup     string    // its group
}

// OnlineUser is a user with at least one connected device.
type OnlineUser struct {
	UserID   int64    `json:"user_id"`
	Username string   `json:"username"`
	Devices  []string `json:"devices"`
}

// Conversation is a conversation as listed by GET /v1/conversations.
type Conversation struct {
	ID               string   `json:"id"`
	Kind             string   `json:"kind"`
	Peer             string   `json:"peer"`
	PeerID           int64    `json:"peer_id"`
	LastSeq          uint64   `json:"last_seq"`
	DeliveredSeq     uint64   `json:"delivered_seq"`
	ReadSeq          uint64   `json:"read_seq"`
	PeerDeliveredSeq uint64   `json:"peer_delivered_seq"`
	PeerReadSeq      uint64   `json:"peer_read_seq"`
	Unread           uint64   `json:"unread"`
	Name             string   `json:"name"` // groups: the group's name
	Pinned           bool     `json:"pinned"`
	Muted            bool     `json:"muted"`
	ClearedSeq       uint64   `json:"cleared_seq"` // HTTP list only: this user cleared the history up to it
	LastMessage      *Message `json:"-"`
}

// CursorStore persists the per-conversation cursors (the highest contiguous
// seq handed to OnMessage) so a restarted process syncs from where it
// stopped instead of from the start. Load is called once by Connect; Save is
// called on the callback goroutine after OnMessage returned for the
// messages up to seq, so a crash never skips a message.
type CursorStore interface {
	Load() (map[string]uint64, error)
	Save(conversationID string, seq uint64) error
}

func messageFromPB(m *magpiepb.Message, me int64) Message {
	msg := Message{
		ConversationID: m.GetConversationId(),
		Seq:            m.GetSeq(),
		SenderID:       m.GetSenderId(),
		Sender:         m.GetSender(),
		Peer:           m.GetPeer(),
		ClientMsgID:    m.GetClientMsgId(),
		Text:           m.GetText(),
		SentAt:         time.UnixMilli(m.GetSentAt()),
		Own:            me != 0 && m.GetSenderId() == me,
		Kind:           MessageKind(m.GetKind()),
		RefSeq:         m.GetRefSeq(),
		Transient:      m.GetTransient() || m.GetSeq() == 0,
		EditedAt:       unixMilli(m.GetEditedAt()),
		Recalled:       m.GetRecalled(),
	}
	if f := m.GetFile(); f != nil {
		msg.File = &FileRef{ID: f.GetId(), Name: f.GetName(), ContentType: f.GetContentType(), Size: f.GetSize()}
	}
	if e := m.GetEvent(); e != nil {
		msg.Event = &GroupEvent{Type: e.GetType(), ActorID: e.GetActorId(), Actor: e.GetActor(),
			UserIDs: e.GetUserIds(), Usernames: e.GetUsernames(), Detail: e.GetDetail()}
	}
	return msg
}

func conversationFromPB(st *magpiepb.ConversationState) ConversationState {
	return ConversationState{
		ID: st.GetConversationId(), Kind: st.GetKind(), Name: st.GetName(), Peer: st.GetPeer(),
		LastSeq: st.GetLastSeq(), DeliveredSeq: st.GetDeliveredSeq(), ReadSeq: st.GetReadSeq(),
		PeerDeliveredSeq: st.GetPeerDeliveredSeq(), PeerReadSeq: st.GetPeerReadSeq(),
		Unread: st.GetUnread(), Pinned: st.GetPinned(), Muted: st.GetMuted(),
	}
}

// unixMilli converts wire times, where 0 means "not set", to time.Time.
func unixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

func toUnixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
