package store

import (
	"context"
	"time"
)

// ScheduledMessage is a message kept to be sent at SendAt (POST
// /v1/messages with send_at). It becomes an ordinary message, with a fresh
// seq, when a logic node sends it; its ClientMsgID makes that send
// idempotent, so a message claimed twice (a node died after sending it)
// is still stored once.
type ScheduledMessage struct {
	ID          int64
	UserID      int64 // the sender
	ToUser      string
	ToGroup     string
	Text        string
	FileID      string
	ClientMsgID string
	SendAt      time.Time
	CreatedAt   time.Time
	// RefusedAt is set (and RefusedCode, a wire.Code, and RefusedReason)
	// once the message could not be sent at its time; zero while pending.
	RefusedAt     time.Time
	RefusedCode   uint32
	RefusedReason string
}

// Refused says whether the message was refused at its time.
func (m ScheduledMessage) Refused() bool { return !m.RefusedAt.IsZero() }

// Scheduler keeps scheduled messages until they are sent.
type Scheduler interface {
	// Schedule stores m; it returns it with ID and CreatedAt set. If the
	// user already scheduled one with the same ClientMsgID and it is still
	// pending, that one is returned with existing set and nothing is stored
	// (a refused one of that id is dropped, and m stored).
	Schedule(ctx context.Context, m ScheduledMessage) (stored ScheduledMessage, existing bool, err error)
	// ScheduledMessages lists the user's pending and refused messages,
	// soonest first.
	ScheduledMessages(ctx context.Context, userID int64) ([]ScheduledMessage, error)
	// CancelScheduled drops one of the user's pending or refused messages.
	// ErrNotFound if there is none with that id (or it is someone else's,
	// or it was sent); ErrExists if a logic node is sending it right now.
	CancelScheduled(ctx context.Context, userID, id int64) error
	// ClaimDue claims up to limit pending messages due at now that no one
	// holds a claim on, soonest first, until now+lease: no other caller
	// gets them before the lease ends.
	ClaimDue(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]ScheduledMessage, error)
	// DoneScheduled drops a message once it was sent.
	DoneScheduled(ctx context.Context, id int64) error
	// RefuseScheduled marks a pending message refused for good at at,
	// with a wire code and a reason: it stays listed and is never claimed
	// again. ErrNotFound if no pending message has that id (cancelled, or
	// refused already: only one caller refuses it).
	RefuseScheduled(ctx context.Context, id int64, at time.Time, code uint32, reason string) error
	// PurgeRefused drops the messages refused before before; it returns
	// how many.
	PurgeRefused(ctx context.Context, before time.Time) (int, error)
}
