package store

import (
	"context"
	"errors"
	"time"
)

// Errors of groups, friends and message changes. Like those in errors.go
// they may come wrapped; test them with errors.Is. A rule's refusal
// (a *rules.Refusal, which carries the client's text and wire code)
// matches the sentinel of its reason.
var (
	ErrForbidden   = errors.New("store: not allowed")
	ErrMuted       = errors.New("store: muted")
	ErrGroupFull   = errors.New("store: group is full")
	ErrLastOwner   = errors.New("store: the owner must transfer ownership first")
	ErrBlocked     = errors.New("store: blocked by the recipient")
	ErrNotFriends  = errors.New("store: not friends")
	ErrRecallLimit = errors.New("store: the message can no longer be changed")
)

// MessageKind matches magpiepb.MessageKind.
type MessageKind int

const (
	KindText         MessageKind = 0
	KindFile         MessageKind = 1
	KindRecall       MessageKind = 2 // RefSeq is recalled
	KindEdit         MessageKind = 3 // RefSeq's text becomes Text
	KindEvent        MessageKind = 4 // a group membership or settings change
	KindNotification MessageKind = 5
)

// FileRef is the file a FILE message carries.
type FileRef struct {
	ID          string
	Name        string
	ContentType string
	Size        int64
}

// Event is the body of a KindEvent message. Logic fills in the names; the
// store keeps it as an opaque document and only narrows UserIDs/Usernames
// of an add or join to the users the change really affected.
type Event struct {
	Type      string   `json:"type"`
	ActorID   int64    `json:"actor_id"`
	Actor     string   `json:"actor"`
	UserIDs   []int64  `json:"user_ids,omitempty"`
	Usernames []string `json:"usernames,omitempty"`
	Detail    string   `json:"detail,omitempty"`
}

// Role is a member's role in a group.
type Role string

const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// JoinPolicy says who may bring people into a group.
type JoinPolicy string

const (
	JoinInvite JoinPolicy = "invite" // owner and admins add members
	JoinOpen   JoinPolicy = "open"   // anyone may join; any member may add
	// JoinApproval: owner and admins add members, and anyone may ask to
	// join (OpJoin stores a request) for the owner or an admin to approve.
	JoinApproval JoinPolicy = "approval"
)

// JoinRequest is a pending request to join a group of policy approval.
type JoinRequest struct {
	UserID   int64
	Username string
	At       time.Time
}

// GroupSyncEntry is one group of a sync: as it is now (without members),
// or Left, a membership that ended (the group as it was then).
type GroupSyncEntry struct {
	Group   GroupInfo
	Version uint64
	Left    bool
}

// GroupInfo is a group conversation's settings. Members is filled only by
// Group and ChangeGroup.
type GroupInfo struct {
	ID          string
	Name        string
	OwnerID     int64
	Owner       string
	JoinPolicy  JoinPolicy
	MutedUntil  time.Time // everyone but owner and admins; zero: not muted
	MemberCount int
	CreatedAt   time.Time
	Dissolved   bool
	Members     []GroupMember // ordered by user id
	Intro       string
	Notice      string
	AvatarURL   string
	MaxMembers  int    // the group's own limit; 0: the server's (or app's) only
	Version     uint64 // the group's last change (GroupChanges)
}

// GroupMember is one current member.
type GroupMember struct {
	UserID     int64
	Username   string
	Role       Role
	MutedUntil time.Time
	JoinedAt   time.Time
}

// NewGroup asks to create a group; OwnerID becomes its owner and every
// other id in MemberIDs a member.
type NewGroup struct {
	Name       string
	OwnerID    int64
	MemberIDs  []int64
	JoinPolicy JoinPolicy
	MaxSize    int // 0: unlimited
	Event      Event
	At         time.Time
	Intro      string
	Notice     string
	AvatarURL  string
	MaxMembers int // 0: MaxSize only
}

// GroupOp is one kind of membership or settings change.
type GroupOp int

const (
	OpAdd      GroupOp = iota + 1 // Targets join; owner/admin, or any member of an open group
	OpJoin                        // the actor joins an open group
	OpLeave                       // the actor leaves; not the owner (ErrLastOwner)
	OpRemove                      // Targets[0] is removed
	OpSetRole                     // Targets[0] gets Role; owner only, never oneself
	OpTransfer                    // Targets[0] becomes owner; the old owner becomes admin
	OpMute                        // Targets[0] is muted until Until (zero: unmuted)
	OpUpdate                      // Name, JoinPolicy, MutedUntil where set
	OpDissolve                    // everyone leaves; no more sends
	OpApprove                     // Targets[0]'s join request is granted; owner/admin
	OpReject                      // Targets[0]'s join request is dropped; owner/admin
)

// GroupChange asks for one change, authorized against the actor's role in
// the same transaction that applies it and stores its event.
type GroupChange struct {
	GroupID    string
	ActorID    int64
	Op         GroupOp
	Targets    []int64
	Role       Role
	Until      time.Time
	Name       *string
	JoinPolicy *JoinPolicy
	MutedUntil *time.Time
	Intro      *string
	Notice     *string
	AvatarURL  *string
	MaxMembers *int // OpUpdate; ErrGroupFull below the current count
	MaxSize    int  // OpAdd, OpJoin, OpApprove; 0: unlimited
	Event      Event
	At         time.Time
}

// GroupChangeResult is a change's outcome.
type GroupChangeResult struct {
	Group GroupInfo // after the change, with members
	// Event is the stored event message, nil if nothing changed (adding
	// members who already are, joining twice).
	Event *Message
	// Former are the users whose membership the change ended (removed,
	// left, or everyone on dissolve): they get the event too.
	Former []int64
	// Requested: OpJoin of a group of policy approval stored (or found)
	// the actor's request; nothing else changed.
	Requested bool
}

// Reads says who has read a message (GET .../messages/{seq}/reads).
type Reads struct {
	Seq         uint64
	Readers     []int64 // members other than the sender whose read cursor is at or past Seq
	MemberCount int     // current members other than the sender who joined before Seq
}

// Window is one user's view of a conversation.
type Window struct {
	JoinedSeq uint64 // the user sees seqs above this
	LeftSeq   uint64 // ... up to this one, if Left
	Left      bool
}

// Groups is the group part of the Store.
type Groups interface {
	// CreateGroup creates a group with its "created" event as seq 1.
	// ErrGroupFull if the members exceed MaxSize; ErrNotFound if a user
	// does not exist.
	CreateGroup(ctx context.Context, g NewGroup) (GroupInfo, Message, error)
	// Group returns a group with its members. ErrNotFound if unknown.
	Group(ctx context.Context, groupID string) (GroupInfo, error)
	// UserGroups lists the groups the user is a current member of, by id,
	// without members.
	UserGroups(ctx context.Context, userID int64) ([]GroupInfo, error)
	// ChangeGroup applies one change and stores its event in the same
	// transaction. ErrNotFound for an unknown or dissolved group or target;
	// ErrNotMember if the actor is not a member; ErrForbidden if the role
	// does not allow it; ErrLastOwner if the owner would be left out;
	// ErrGroupFull beyond MaxSize.
	ChangeGroup(ctx context.Context, c GroupChange) (GroupChangeResult, error)
	// MessageReads tells who read seq. ErrNotMember unless the user can see
	// seq; ErrNotFound if there is no such message.
	MessageReads(ctx context.Context, userID int64, conversationID string, seq uint64) (Reads, error)
	// MemberWindow returns the user's window, also after they left.
	// ErrNotMember if they never were a member.
	MemberWindow(ctx context.Context, userID int64, conversationID string) (Window, error)
	// JoinRequests lists a group's pending join requests, oldest first.
	JoinRequests(ctx context.Context, groupID string) ([]JoinRequest, error)
	// GroupChanges lists up to limit of the user's groups changed after
	// version after, by version: current groups that changed and groups
	// whose membership ended; and the latest version of any group.
	GroupChanges(ctx context.Context, userID int64, after uint64, limit int) ([]GroupSyncEntry, uint64, error)
}

// Contact is another user in one of the lists of Contacts.
type Contact struct {
	UserID   int64
	Username string
	Since    time.Time
	// Friends only: what the user set for this friend, and the user's
	// friend seq of the friendship's last change.
	Remark string
	Group  string
	Seq    uint64
}

// Contacts are one user's friends, pending requests and blocks.
type Contacts struct {
	Friends  []Contact
	Incoming []Contact // asked me
	Outgoing []Contact // I asked
	Blocked  []Contact // I blocked
	Policy   FriendPolicy
	Seq      uint64 // the user's friend seq: the last change to Friends
}

// FriendPolicy is who may add a user as a friend.
type FriendPolicy string

const (
	FriendApprove FriendPolicy = "approve" // a request waits for the user's answer (the default)
	FriendAnyone  FriendPolicy = "anyone"  // a request makes friends at once
	FriendNobody  FriendPolicy = "nobody"  // requests are refused
)

// FriendChange is one entry of a friend sync: the friend as it is now,
// or, Removed, a friendship that ended (only UserID and Username set).
type FriendChange struct {
	Contact
	Removed bool
}

// FriendStatus is the outcome of a friend request.
type FriendStatus string

const (
	FriendRequested FriendStatus = "requested"
	FriendsNow      FriendStatus = "friends"
)

// Social is friends, blocks, per-user conversation flags and file
// visibility.
type Social interface {
	// RequestFriend asks to; if to already asked from, they become friends.
	// ErrBlocked if either blocked the other; ErrNotFound for unknown users.
	RequestFriend(ctx context.Context, from, to int64, at time.Time) (FriendStatus, error)
	// AcceptFriend makes friends of a pending request from requester.
	// ErrNotFound if there is none.
	AcceptFriend(ctx context.Context, userID, requester int64, at time.Time) error
	// DeclineFriend drops a pending request from requester. ErrNotFound
	// if there is none.
	DeclineFriend(ctx context.Context, userID, requester int64) error
	// RemoveFriend ends a friendship or cancels requests either way.
	// ErrNotFound if there was nothing.
	RemoveFriend(ctx context.Context, userID, other int64) error
	// Block and Unblock are idempotent. A block drops pending requests
	// between the two but keeps a friendship.
	Block(ctx context.Context, userID, other int64, at time.Time) error
	Unblock(ctx context.Context, userID, other int64) error
	Contacts(ctx context.Context, userID int64) (Contacts, error)
	// SetFriendInfo changes the remark and group (category) the user keeps
	// for a friend where set, and returns the friend. ErrNotFound unless
	// they are friends.
	SetFriendInfo(ctx context.Context, userID, friendID int64, remark, group *string) (Contact, error)
	// SetFriendPolicy says who may add the user. ErrNotFound for an
	// unknown user.
	SetFriendPolicy(ctx context.Context, userID int64, policy FriendPolicy) error
	// FriendChanges lists up to limit changes to the user's friends after
	// friend seq after, oldest first (each friend once, at its last
	// change), and the user's current friend seq. Every change (a
	// friendship made or ended, a remark or group set) takes the user's
	// next friend seq, so no two entries share one.
	FriendChanges(ctx context.Context, userID int64, after uint64, limit int) ([]FriendChange, uint64, error)
	// ContactIDs lists the users the user is in touch with: friends, the
	// other current members of their current groups, and the other user of
	// each private conversation they have. Unordered, without the user.
	ContactIDs(ctx context.Context, userID int64) ([]int64, error)
	// BlockedEither reports whether a blocked b or b blocked a.
	BlockedEither(ctx context.Context, a, b int64) (bool, error)

	// SetConversationFlags changes the user's pinned and muted flags
	// where set. ErrNotMember if the user is not a current member.
	SetConversationFlags(ctx context.Context, userID int64, conversationID string, pinned, muted *bool) (Conversation, error)
	// HideConversation takes the conversation out of the user's list until
	// a message after its current last seq arrives; with clear, the user's
	// history (Messages, and so sync and search) also starts after that
	// seq, for this user only. It returns that seq. ErrNotMember if the
	// user is not a current member.
	HideConversation(ctx context.Context, userID int64, conversationID string, clear bool) (uint64, error)
	// FileVisible reports whether the user can see a message (not
	// recalled) that carries the file.
	FileVisible(ctx context.Context, userID int64, fileID string) (bool, error)
}
