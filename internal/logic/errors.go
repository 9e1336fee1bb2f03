package logic

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// Logic's errors say what went wrong (a Kind) and, for what a client can
// fix, in words it may see; they never name a wire code. The edges (the
// HTTP API, the adapter's replies on the long connection) turn them into
// one with Code, the one table (codes.go). The rules' refusals carry their
// own code.

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

// Kind is what went wrong, as the client can act on it.
type Kind uint8

const (
	KindInternal           Kind = iota // a server fault: logged, shown as "internal error"
	KindInvalid                        // a malformed or invalid request
	KindTooLarge                       // a field, list or body over its limit
	KindNotFound                       // no such user, group, conversation, message, file or session
	KindConflict                       // already exists (a taken username)
	KindForbidden                      // not allowed for this user
	KindNotMember                      // not a member of the conversation
	KindSeqOutOfRange                  // a receipt beyond the conversation's last seq
	KindRateLimited                    // this caller is over a limit: retry after RetryAfter
	KindUnavailable                    // the server is busy or a backend failed: retry
	KindUnauthenticated                // no valid token
	KindSessionExpired                 // the token expired on a live connection
	KindInvalidCredentials             // wrong username or password
	KindDeviceLimit                    // the device policy refused the login
	KindUndecodable                    // a request frame that does not decode
	KindUnknownCommand                 // a request body logic does not know
	KindLoggedOut                      // a kick: the session was ended (logout, password change, ended elsewhere)
	KindReplaced                       // a kick: a newer login took this device's place
	numKinds
)

// Error is an error with its kind and client-visible text.
type Error struct {
	Kind       Kind
	Msg        string
	RetryAfter int // milliseconds
	Err        error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// The constructors of logic's own errors. Each wraps the sentinel its
// callers test with errors.Is.

func invalid(msg string) error { return &Error{Kind: KindInvalid, Msg: msg, Err: ErrBadRequest} }

func tooLarge(msg string) error { return &Error{Kind: KindTooLarge, Msg: msg, Err: ErrBadRequest} }

func notFound(msg string, err error) error { return &Error{Kind: KindNotFound, Msg: msg, Err: err} }

func forbidden(msg string, err error) error { return &Error{Kind: KindForbidden, Msg: msg, Err: err} }

// rateLimited is the refusal of a limit's bucket, with the wait (rounded
// up past it, so that a client retrying on time is not early).
func rateLimited(msg string, wait time.Duration) error {
	return &Error{Kind: KindRateLimited, Msg: msg, RetryAfter: int(wait.Milliseconds()) + 1, Err: ErrRateLimited}
}

// unavailable: the server could not do it now; retry after retry. err is
// the cause (logged by the edge, never shown).
func unavailable(msg string, retry time.Duration, err error) error {
	return &Error{Kind: KindUnavailable, Msg: msg, RetryAfter: int(retry.Milliseconds()), Err: err}
}

// errBusy is a full queue: the client retries shortly.
var errBusy = &Error{Kind: KindRateLimited, Msg: "server busy, retry", RetryAfter: 100, Err: ErrOverloaded}

// kindOf is err's kind: an Error's own, else the kind of the sentinel it
// wraps; KindInternal for anything else. (A rule's refusal has no kind:
// Code and Message ask it first.)
func kindOf(err error) Kind {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Kind
	case errors.Is(err, ErrBadRequest):
		return KindInvalid
	case errors.Is(err, ErrInvalidCredentials):
		return KindInvalidCredentials
	case errors.Is(err, ErrUnauthenticated):
		return KindUnauthenticated
	case errors.Is(err, ErrRateLimited):
		return KindRateLimited
	case errors.Is(err, ErrDeviceLimit):
		return KindDeviceLimit
	case errors.Is(err, ErrNoGateway), errors.Is(err, ErrOverloaded), errors.Is(err, ErrStopped):
		return KindUnavailable
	case errors.Is(err, store.ErrNotFound):
		return KindNotFound
	case errors.Is(err, store.ErrExists):
		return KindConflict
	case errors.Is(err, store.ErrNotMember):
		return KindNotMember
	case errors.Is(err, store.ErrSeqOutOfRange):
		return KindSeqOutOfRange
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return KindUnavailable
	}
	return KindInternal
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
	switch kindOf(err) {
	case KindInternal:
		return "internal error"
	case KindUnavailable:
		return "service unavailable, retry"
	case KindNotFound:
		return "not found"
	// The store wraps these with the ids they concern (`conversation
	// "p_3_4": store: not a member…`, `seq 9 > 3 in "p_1_2": store: …`),
	// which are not for clients; explain's messages leave them out too.
	case KindNotMember:
		return "not a member of the conversation"
	case KindSeqOutOfRange:
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

// explain gives a store error its client-visible text: a rule's refusal
// carries its own (and its code); the store's sentinels get a fixed text,
// never the store's wording (it names ids that are not for clients).
func explain(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.As(err, new(*rules.Refusal)):
		return err
	case errors.Is(err, store.ErrNotMember):
		return &Error{Kind: KindNotMember, Msg: "not a member of the conversation", Err: err}
	case errors.Is(err, store.ErrNotFound):
		return notFound("not found", err)
	}
	return err
}
