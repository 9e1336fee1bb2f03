package logic

import (
	"context"
	"errors"
	"strings"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

var (
	ErrBadRequest         = errors.New("bad request")
	ErrInvalidCredentials = errors.New("invalid username or password")
	ErrUnauthenticated    = errors.New("invalid or expired token")
	ErrRateLimited        = errors.New("too many requests")
	ErrDeviceLimit        = errors.New("device limit reached for this account")
	ErrNoGateway          = errors.New("no gateway available")
	ErrOverloaded         = errors.New("server overloaded")
	ErrStopped            = errors.New("logic stopped")
	ErrVetoed             = errors.New("message vetoed")
)

// Error carries a client-visible code with a specific message.
type Error struct {
	Code       wire.Code
	Msg        string
	RetryAfter int // milliseconds
	Err        error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

func badRequest(msg string) error {
	return &Error{Code: wire.CodeBadRequest, Msg: msg, Err: ErrBadRequest}
}

// Code maps an error to its client-visible code. It is the one table both
// edges (the HTTP API and the long connection) use.
func Code(err error) wire.Code {
	var e *Error
	var refusal *rules.Refusal
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.Code
	case errors.As(err, &refusal):
		return refusal.Code()
	case errors.Is(err, ErrBadRequest):
		return wire.CodeBadRequest
	case errors.Is(err, ErrInvalidCredentials):
		return wire.CodeInvalidCredential
	case errors.Is(err, ErrUnauthenticated):
		return wire.CodeUnauthenticated
	case errors.Is(err, ErrRateLimited):
		return wire.CodeRateLimited
	case errors.Is(err, ErrDeviceLimit):
		return wire.CodeDeviceLimit
	case errors.Is(err, ErrNoGateway), errors.Is(err, ErrOverloaded), errors.Is(err, ErrStopped):
		return wire.CodeUnavailable
	case errors.Is(err, store.ErrNotFound):
		return wire.CodeNotFound
	case errors.Is(err, store.ErrExists):
		return wire.CodeConflict
	case errors.Is(err, store.ErrNotMember):
		return wire.CodeNotMember
	case errors.Is(err, store.ErrSeqOutOfRange):
		return wire.CodeSeqOutOfRange
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return wire.CodeUnavailable
	}
	return wire.CodeInternal
}

// Message is the client-visible text of an error: specific for the errors
// a client can fix, generic for internal faults (whose details are logged).
func Message(err error) string {
	var e *Error
	var refusal *rules.Refusal
	switch {
	case errors.As(err, &e):
		return e.Msg
	case errors.As(err, &refusal):
		return refusal.Error()
	}
	switch Code(err) {
	case wire.CodeInternal:
		return "internal error"
	case wire.CodeUnavailable:
		return "service unavailable, retry"
	case wire.CodeNotFound:
		return "not found"
	// The store wraps these with the ids they concern (`conversation
	// "p_3_4": store: not a member…`, `seq 9 > 3 in "p_1_2": store: …`),
	// which are not for clients; explain's messages leave them out too.
	case wire.CodeNotMember:
		return "not a member of the conversation"
	case wire.CodeSeqOutOfRange:
		return "seq beyond the conversation's last message"
	}
	return strings.TrimPrefix(err.Error(), "store: ")
}

// RetryAfter is the suggested wait in milliseconds, or 0.
func RetryAfter(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// explain gives a store error its client-visible code and text: a rule's
// refusal carries both; the store's sentinels get a fixed text, never the
// store's wording (it names ids that are not for clients).
func explain(err error) error {
	var refusal *rules.Refusal
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refusal):
		return &Error{Code: refusal.Code(), Msg: refusal.Error(), Err: err}
	case errors.Is(err, store.ErrNotMember):
		return &Error{Code: wire.CodeNotMember, Msg: "not a member of the conversation", Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: wire.CodeNotFound, Msg: "not found", Err: err}
	}
	return err
}
