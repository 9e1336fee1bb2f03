package store

import (
	"context"
	"time"
)

// Moderation is what an app's admins do to its users and messages
// (issue 12's admin API).
type Moderation interface {
	// SetUserDisabled disables (at is the time) or enables a user and,
	// when disabling, revokes every session of the user in the same
	// transaction. ErrNotFound if there is no such user (or it was
	// deleted).
	SetUserDisabled(ctx context.Context, userID int64, disabled bool, at time.Time) error
	// DeleteUser disables a user for good in one transaction: its
	// sessions revoked, its password hash dropped, its friendships,
	// requests and blocks gone, and its name freed (UserByName no longer
	// finds it; UserByID still does, with DeletedAt set, so the history
	// of others keeps its sender). With erase, every message it sent is
	// blanked as RemoveMessage blanks one, without a recall message.
	// Group memberships are left as they are (logic makes the user leave
	// its groups afterwards, with events). ErrNotFound if there is no
	// such user or it was deleted already.
	DeleteUser(ctx context.Context, userID int64, erase bool, at time.Time) error
	// ListUsers pages through an app's users by id (not the deleted).
	ListUsers(ctx context.Context, appID int64, q UserQuery) ([]User, error)
	// RemoveMessage is a moderator's recall: the text or file message
	// seq (and its edits) is blanked and marked recalled with the event
	// RemovedByAdmin, and a RECALL of it is appended in the same
	// transaction, sent by the original sender and carrying that event,
	// for the devices that have the message. It returns the RECALL.
	// ErrNotFound if there is no such message, or it is not a text or
	// file message, or it was recalled already.
	RemoveMessage(ctx context.Context, conversationID string, seq uint64, at time.Time) (Message, error)
}

// RemovedByAdmin is the Event.Type of a message a moderator removed and
// of the RECALL that says so.
const RemovedByAdmin = "removed_by_admin"

// UserQuery selects a page of an app's users.
type UserQuery struct {
	Match   string // "": all; else a case-insensitive part of the username or display name
	AfterID int64  // users with a larger id
	Limit   int
}
