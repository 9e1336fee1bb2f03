package api

import (
	"context"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
)

// What the handlers need of the logic role, one interface per handler
// group, owned here so that a test can stand in for one group with a small
// fake (embed Logic for the rest). *logic.Service implements them all.
// Every method's errors go through fail, which picks the HTTP status from
// logic.Code; none of them is called with a nil context.

// Accounts is registration, login and the caller's routing (api.go).
type Accounts interface {
	RegisterFrom(ctx context.Context, from logic.Client, username, password string) (store.User, error)
	LoginFrom(ctx context.Context, from logic.Client, username, password, device, platform string) (logic.LoginResult, error)
	// LoginToken exchanges a token of an outside source (--auth oidc or
	// http) for a session.
	LoginToken(ctx context.Context, from logic.Client, token, device, platform string) (logic.LoginResult, error)
	// Authenticate checks a token; logic's unauthenticated error if it is
	// invalid, expired or its session ended.
	Authenticate(ctx context.Context, token string) (logic.Identity, error)
	Route(ctx context.Context, id logic.Identity) (*clusterpb.GatewayInfo, error)
	OnlinePage(ctx context.Context, id logic.Identity, q logic.OnlineQuery) (logic.OnlinePage, error)
	// LookupUser finds one user by exact name: logic's not_found if none.
	LookupUser(ctx context.Context, id logic.Identity, name string) (logic.UserInfo, error)
	// StoreErr is nil while the database answers (GET /healthz).
	StoreErr() error
}

// Sessions is the caller's sessions (sessions.go, POST /v1/logout).
type Sessions interface {
	Logout(ctx context.Context, id logic.Identity) error
	LogoutAll(ctx context.Context, id logic.Identity) error
	Sessions(ctx context.Context, id logic.Identity) ([]logic.SessionInfo, error)
	EndSession(ctx context.Context, id logic.Identity, sessionID string) error
	ChangePassword(ctx context.Context, id logic.Identity, oldPassword, newPassword string) error
}

// Messages is sending and changing messages (api.go, recall.go). Each
// returns once the message is committed (an ACK means durable).
type Messages interface {
	Send(ctx context.Context, from logic.Identity, req logic.SendRequest) (logic.Ack, error)
	Recall(ctx context.Context, from logic.Identity, req logic.ChangeRequest) (logic.Ack, error)
	Edit(ctx context.Context, from logic.Identity, req logic.ChangeRequest) (logic.Ack, error)
	MessageReads(ctx context.Context, id logic.Identity, convID string, seq uint64) (logic.ReadsView, error)
}

// Conversations is the caller's conversations, history and receipts
// (api.go, recall.go).
type Conversations interface {
	Conversations(ctx context.Context, id logic.Identity) ([]store.Conversation, error)
	History(ctx context.Context, id logic.Identity, q store.MessageQuery) ([]store.Message, uint64, error)
	MoveCursor(ctx context.Context, id logic.Identity, convID string, kind store.CursorKind, seq uint64, origin *clusterpb.ConnRef) (store.Cursors, error)
	SetConversationFlags(ctx context.Context, id logic.Identity, convID string, pinned, muted *bool, origin *clusterpb.ConnRef) (store.Conversation, error)
	HideConversation(ctx context.Context, id logic.Identity, convID string, clear bool) (uint64, error)
	ScheduledMessages(ctx context.Context, id logic.Identity) ([]logic.ScheduledView, error)
	CancelScheduled(ctx context.Context, id logic.Identity, schedID int64) error
}

// Groups is group management (groups.go).
type Groups interface {
	CreateGroupWith(ctx context.Context, id logic.Identity, name string, members []string, policy string, f logic.GroupFields) (store.GroupInfo, error)
	JoinRequests(ctx context.Context, id logic.Identity, gid string) ([]store.JoinRequest, error)
	AnswerJoin(ctx context.Context, id logic.Identity, gid, name string, approve bool) error
	SyncGroups(ctx context.Context, id logic.Identity, since uint64, limit int) (logic.GroupSync, error)
	CreateGroup(ctx context.Context, id logic.Identity, name string, members []string, policy string) (store.GroupInfo, error)
	Groups(ctx context.Context, id logic.Identity) ([]store.GroupInfo, error)
	Group(ctx context.Context, id logic.Identity, gid string) (store.GroupInfo, error)
	UpdateGroup(ctx context.Context, id logic.Identity, gid string, u logic.GroupUpdate) (store.GroupInfo, error)
	DissolveGroup(ctx context.Context, id logic.Identity, gid string) error
	AddMembers(ctx context.Context, id logic.Identity, gid string, names []string) (store.GroupInfo, error)
	JoinGroup(ctx context.Context, id logic.Identity, gid string) (store.GroupInfo, bool, error)
	LeaveGroup(ctx context.Context, id logic.Identity, gid string) error
	RemoveMember(ctx context.Context, id logic.Identity, gid, name string) error
	SetRole(ctx context.Context, id logic.Identity, gid, name, role string) error
	MuteMember(ctx context.Context, id logic.Identity, gid, name string, until int64) error
	TransferOwnership(ctx context.Context, id logic.Identity, gid, name string) error
}

// Social is friends and blocks (friends.go).
type Social interface {
	Contacts(ctx context.Context, id logic.Identity) (store.Contacts, error)
	SetFriendInfo(ctx context.Context, id logic.Identity, name string, remark, group *string) (store.Contact, error)
	SetFriendPolicy(ctx context.Context, id logic.Identity, policy string) error
	SyncFriends(ctx context.Context, id logic.Identity, since uint64, limit int) (logic.FriendSync, error)
	FriendGroups(ctx context.Context, id logic.Identity) ([]logic.FriendGroup, error)
	RequestFriend(ctx context.Context, id logic.Identity, name string) (store.FriendStatus, error)
	AcceptFriend(ctx context.Context, id logic.Identity, name string) error
	DeclineFriend(ctx context.Context, id logic.Identity, name string) error
	RemoveFriend(ctx context.Context, id logic.Identity, name string) error
	Block(ctx context.Context, id logic.Identity, name string) error
	Unblock(ctx context.Context, id logic.Identity, name string) error
}

// Files is who may download an upload (files.go).
type Files interface {
	// CanSeeFile: the uploader, or a member of a conversation the file was
	// sent to; store.ErrNotFound for an unknown id.
	CanSeeFile(ctx context.Context, id logic.Identity, fileID string) (bool, error)
}

// Pusher is the signed server push API (push.go), called after the
// signature was verified.
type Pusher interface {
	Push(ctx context.Context, req logic.PushRequest) (logic.PushResult, error)
	// AppForKey finds the app of a push (admin false) or admin key id
	// that is not one of the server's own keys, with its secret.
	AppForKey(ctx context.Context, keyID string, admin bool) (store.App, []byte, error)
	// HasApps reports whether there are apps besides the default (and so
	// keys to look up).
	HasApps(ctx context.Context) bool
}

// Admin is the signed admin API (admin.go), called after the signature
// was verified.
type Admin interface {
	ImportUsers(ctx context.Context, app int64, users []logic.ImportUser) ([]logic.ImportResult, error)
	ImportFriendships(ctx context.Context, app int64, pairs []logic.ImportFriendship) ([]logic.ImportEntry, error)
	ImportGroups(ctx context.Context, app int64, groups []logic.ImportGroup) ([]logic.ImportEntry, error)
	// Moderation (adminusers.go).
	SetUserDisabled(ctx context.Context, app int64, username string, disabled bool) (store.User, error)
	DeleteUser(ctx context.Context, app int64, username string, erase bool) (store.User, error)
	ListUsers(ctx context.Context, app int64, match, cursor string, limit int) ([]store.User, string, error)
	RemoveMessage(ctx context.Context, app int64, conversationID string, seq uint64) (store.Message, error)
	// Profiles (profiles.go).
	UpdateProfile(ctx context.Context, id logic.Identity, c logic.ProfileChange) (logic.Profile, error)
	MyProfile(ctx context.Context, id logic.Identity) (logic.Profile, error)
	ProfileOf(ctx context.Context, id logic.Identity, name string) (logic.Profile, error)
	// Apps, for operators (the server's --admin-keys).
	Apps(ctx context.Context) ([]store.App, error)
	AppByName(ctx context.Context, name string) (store.App, error)
	CreateApp(ctx context.Context, name string, settings store.AppSettings) (store.App, error)
	RotateAppKeys(ctx context.Context, name string) (store.App, error)
	SetAppSettings(ctx context.Context, name string, settings store.AppSettings) (store.App, error)
}

// Logic is every group: what New takes.
type Logic interface {
	Accounts
	Sessions
	Messages
	Conversations
	Searcher
	Groups
	Social
	Files
	Pusher
	Admin
}

var _ Logic = (*logic.Service)(nil)
