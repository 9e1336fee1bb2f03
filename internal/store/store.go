// Package store defines Magpie's durable state: users, sessions,
// conversations, messages and receipt cursors, behind one interface with a
// shared test suite (storetest) that every backend passes.
//
// Implementations are safe for concurrent use. Errors are the sentinels in
// errors.go, possibly wrapped; callers test them with errors.Is.
package store

import (
	"context"
	"strconv"
	"time"
)

// Store is the contract between the logic role and a database.
//
// Guarantees every implementation keeps (storetest checks them):
//   - AppendMessages commits every accepted message of a batch in one
//     transaction; when it returns, accepted messages are durable.
//   - Each conversation's seqs are 1, 2, 3, ... with no gaps or repeats,
//     assigned in the transaction that stores the message.
//   - (SenderID, ClientMsgID) is unique forever: appending it again returns
//     the original message with Duplicate set, whatever the conversation.
//   - Cursors only move forward and keep read <= delivered <= last seq.
type Store interface {
	// Ping reports whether the database answers a trivial query.
	Ping(ctx context.Context) error

	// CreateUser adds a local user to an app. ErrExists if the username
	// is taken in that app (case-insensitively).
	CreateUser(ctx context.Context, appID int64, username, passwordHash string) (User, error)
	// UserByName finds a user of an app case-insensitively. ErrNotFound
	// if none.
	UserByName(ctx context.Context, appID int64, username string) (User, error)
	// UserByID returns ErrNotFound if there is no such user.
	UserByID(ctx context.Context, id int64) (User, error)
	// UsersByID returns the users that exist among ids, in any order.
	UsersByID(ctx context.Context, ids []int64) ([]User, error)

	// CreateSession stores a new login session.
	CreateSession(ctx context.Context, s Session) error
	// Session returns ErrNotFound if the id is unknown. Revoked and expired
	// sessions are returned; the caller checks them.
	Session(ctx context.Context, id string) (Session, error)
	// ActiveSessions lists the user's sessions that are neither revoked nor
	// expired at now, oldest first.
	ActiveSessions(ctx context.Context, userID int64, now time.Time) ([]Session, error)
	// RevokeSession marks a session revoked. Revoking twice is not an error;
	// ErrNotFound if the id is unknown.
	RevokeSession(ctx context.Context, id string) error
	// TouchSession records that the session was seen at at (its last
	// authentication or request). It never moves LastSeen backwards.
	// ErrNotFound if the id is unknown.
	TouchSession(ctx context.Context, id string, at time.Time) error
	// SetPasswordHash replaces a user's password hash. ErrNotFound if there
	// is no such user.
	SetPasswordHash(ctx context.Context, userID int64, passwordHash string) error
	// CreateExternalUser adds a user of an outside login source (AuthSource
	// set, no password hash) with its profile to u.AppID. ErrExists if the
	// username is taken in the app (case-insensitively), whatever the
	// other user's source.
	CreateExternalUser(ctx context.Context, u User) (User, error)
	// SetProfile replaces a user's display name and email. ErrNotFound if
	// there is no such user.
	SetProfile(ctx context.Context, userID int64, displayName, email string) error
	// ImportUsers adds users (AppID, Username, PasswordHash, AuthSource ""
	// for local, DisplayName, Email) in one transaction. A username already
	// taken in its app (case-insensitively, also by an earlier entry of the
	// same call) is left as it is: its result is the existing user with
	// Existing set. Results line up with users.
	ImportUsers(ctx context.Context, users []User) ([]ImportResult, error)

	// AppendMessages stores a batch in one transaction, in order. Results
	// line up with reqs; a per-message failure (ErrNotMember, ErrNotFound)
	// is in its result's Err and does not affect the others. The returned
	// error is set only if nothing was committed.
	AppendMessages(ctx context.Context, reqs []AppendRequest) ([]AppendResult, error)

	// MessageByClientID returns what senderID stored under clientMsgID
	// (conversation, seq, sent_at, kind, ref_seq and text), or ErrNotFound.
	// It is one indexed read outside any transaction: it may miss a
	// message committing meanwhile, so AppendMessages still decides.
	MessageByClientID(ctx context.Context, senderID int64, clientMsgID string) (Message, error)

	// Messages returns up to limit messages of a conversation the user is a
	// member of, with AfterSeq < seq (ascending), or if BeforeSeq > 0 the
	// latest ones with seq < BeforeSeq (still returned ascending).
	// ErrNotMember if the user is not a member.
	Messages(ctx context.Context, userID int64, q MessageQuery) ([]Message, error)

	// Conversations lists the user's conversations, most recent first.
	Conversations(ctx context.Context, userID int64) ([]Conversation, error)
	// Conversation returns one conversation from the user's view.
	// ErrNotMember if the user is not a member (or it does not exist).
	Conversation(ctx context.Context, userID int64, conversationID string) (Conversation, error)
	// Members lists the user ids of a conversation's current members.
	// ErrNotFound if the conversation does not exist.
	Members(ctx context.Context, conversationID string) ([]int64, error)

	// MoveCursor moves the user's delivered or read cursor forward to seq
	// and returns the cursors after the move. Moving read also moves
	// delivered up to it. A seq at or below the current cursor changes
	// nothing (Moved is false). ErrSeqOutOfRange if seq > last seq;
	// ErrNotMember if the user is not a member.
	MoveCursor(ctx context.Context, userID int64, conversationID string, kind CursorKind, seq uint64) (Cursors, error)
	// MoveCursors applies many moves in one transaction (receipts are
	// group-committed like messages). Results line up with moves; a
	// per-move ErrNotMember or ErrSeqOutOfRange is in its result only.
	MoveCursors(ctx context.Context, moves []CursorMove) ([]CursorResult, error)

	Groups         // groups.go
	Social         // groups.go
	Searcher       // search.go
	Apps           // apps.go
	Importer       // imports.go
	Moderation     // moderation.go
	Profiles       // profiles.go
	Scheduler      // scheduled.go
	DeviceSessions // devices.go

	Close() error
}

// User is an account.
type User struct {
	ID           int64
	AppID        int64 // the app it belongs to; 0 reads as DefaultApp
	Username     string
	PasswordHash string // "" for a user of an outside source
	CreatedAt    time.Time
	AuthSource   string // "local" (CreateUser), or the outside source that created it: "ldap", "http", "oidc"
	DisplayName  string
	Email        string
	DisabledAt   time.Time         // zero unless disabled (moderation.go): no login
	DeletedAt    time.Time         // zero unless deleted: no login, not found by name
	AvatarURL    string            // profiles.go
	Custom       map[string]string // the app's own profile fields; nil: none
}

// ImportResult is one user of ImportUsers.
type ImportResult struct {
	User     User
	Existing bool // the name was taken: User is the user holding it, unchanged
}

// Session is one login of one device.
type Session struct {
	ID        string
	UserID    int64
	Device    string
	Platform  string
	CreatedAt time.Time
	ExpiresAt time.Time
	LastSeen  time.Time // last authentication or request; CreatedAt until then
	Revoked   bool
}

// Message is a stored message.
type Message struct {
	ConversationID string
	Seq            uint64
	SenderID       int64
	Sender         string // username, filled in on reads
	ClientMsgID    string
	Text           string
	SentAt         time.Time // set by the server at commit
	Kind           MessageKind
	RefSeq         uint64    // KindRecall, KindEdit: the message changed
	File           *FileRef  // KindFile
	Event          *Event    // KindEvent
	EditedAt       time.Time // zero unless an EDIT replaced the text
	Recalled       bool      // a RECALL cleared text and file
}

// AppendRequest asks to store one message. For a private conversation,
// ConversationID is PrivateConversationID(SenderID, PeerID) and PeerID is
// set; the store creates the conversation and both memberships on first use.
//
// Checks made in the transaction that assigns the seq (per-message errors;
// the rules themselves are package rules'): the sender is a current member
// (ErrNotMember); in a group, neither the sender nor, for plain members,
// the whole group is muted at SentAt (ErrMuted); in a private chat the peer has not blocked the sender
// (ErrBlocked) and, with RequireFriend, they are friends (ErrNotFriends).
// A RECALL or EDIT also changes the message RefSeq in the same transaction
// (text and file cleared, or text replaced): its sender may do so within
// RecallWindow of sending it, and a group's owner and admins may recall
// any message they can see (ErrForbidden, ErrRecallLimit, ErrNotFound).
type AppendRequest struct {
	ConversationID string
	SenderID       int64
	PeerID         int64 // private conversations only
	ClientMsgID    string
	Text           string
	SentAt         time.Time
	Kind           MessageKind
	RefSeq         uint64
	File           *FileRef
	RecallWindow   time.Duration
	RequireFriend  bool
}

// AppendResult is the outcome of one AppendRequest.
type AppendResult struct {
	Message   Message
	Duplicate bool // ClientMsgID was stored before; Message is the original
	Err       error
}

// MessageQuery selects a page of a conversation.
type MessageQuery struct {
	ConversationID string
	AfterSeq       uint64
	BeforeSeq      uint64
	Limit          int
}

// ConversationKind tells private chats from groups.
type ConversationKind string

const (
	Private ConversationKind = "private"
	Group   ConversationKind = "group"
)

// Conversation is a conversation seen by one member.
type Conversation struct {
	ID               string
	Kind             ConversationKind
	LastSeq          uint64
	DeliveredSeq     uint64 // the viewing user's cursors
	ReadSeq          uint64
	PeerID           int64 // private chats: the other member
	Peer             string
	PeerDeliveredSeq uint64
	PeerReadSeq      uint64
	LastMessage      *Message // nil if empty
	UpdatedAt        time.Time
	Name             string // groups
	Pinned           bool   // the viewing user's flags
	Muted            bool
	// ClearedSeq is where the viewing user cleared the history (DELETE
	// /v1/conversations/{id}?clear=true): they see only what came after.
	ClearedSeq uint64
}

// Unread is the number of messages after the read cursor, not counting
// those the user cleared.
func (c Conversation) Unread() uint64 {
	return c.LastSeq - max(c.ReadSeq, min(c.ClearedSeq, c.LastSeq))
}

// CursorKind selects a receipt cursor.
type CursorKind int

const (
	Delivered CursorKind = 1
	Read      CursorKind = 2
)

// Cursors are one user's receipt cursors in one conversation.
type Cursors struct {
	ConversationID string
	UserID         int64
	DeliveredSeq   uint64
	ReadSeq        uint64
	LastSeq        uint64
	Moved          bool
}

// CursorMove is one receipt to apply.
type CursorMove struct {
	UserID         int64
	ConversationID string
	Kind           CursorKind
	Seq            uint64
}

// CursorResult is the outcome of one CursorMove.
type CursorResult struct {
	Cursors Cursors
	Err     error
}

// PrivateConversationID names the conversation of two users; the same for
// both orders.
func PrivateConversationID(a, b int64) string {
	if a > b {
		a, b = b, a
	}
	// Several calls per message on the send path: no fmt.
	buf := make([]byte, 0, 2+2*20+1)
	buf = append(buf, "p_"...)
	buf = strconv.AppendInt(buf, a, 10)
	buf = append(buf, '_')
	buf = strconv.AppendInt(buf, b, 10)
	return string(buf)
}
