package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

var (
	// ErrClosed is returned by calls on a Client after Close.
	ErrClosed = errors.New("magpie: client closed")
	// ErrNotConnected is returned by calls that need the long connection
	// before Connect succeeded (or after the client stopped).
	ErrNotConnected = errors.New("magpie: not connected")

	// errConnLost ends a request whose connection died; callers that may
	// repeat the request wait for the next connection and try again.
	errConnLost = errors.New("magpie: connection lost")
	// errHeartbeat closes a connection whose pong did not arrive in time.
	errHeartbeat = errors.New("magpie: no pong within the heartbeat deadline")
)

// Error is a failure reported by the server (over HTTP or the long
// connection) or a request refused locally before it was sent. Code.Action()
// says whether repeating could help; the SDK already retries, reconnects and
// logs in again where the action says so, so an *Error returned to the
// application means "give up" (or the context ended first).
type Error struct {
	Code       wire.Code
	Message    string
	RetryAfter time.Duration // the server's retry_after_ms, if any
	Status     int           // HTTP status, 0 for long-connection errors
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "magpie: " + e.Code.String()
	}
	return fmt.Sprintf("magpie: %s: %s", e.Code, e.Message)
}

// Action says what a client should do about the error.
func (e *Error) Action() wire.Action { return e.Code.Action() }

var codeByName = func() map[string]wire.Code {
	m := make(map[string]wire.Code)
	for _, c := range wire.Codes() {
		m[c.String()] = c
	}
	return m
}()

func errorFromWire(e *magpiepb.Error) *Error {
	return &Error{
		Code:       wire.Code(e.GetCode()),
		Message:    e.GetMessage(),
		RetryAfter: time.Duration(e.GetRetryAfterMs()) * time.Millisecond,
	}
}

// codeForStatus guesses a code when an HTTP error has no usable JSON body
// (a proxy's 502, for example).
func codeForStatus(status int) wire.Code {
	switch {
	case status == http.StatusUnauthorized:
		return wire.CodeUnauthenticated
	case status == http.StatusForbidden:
		return wire.CodeForbidden
	case status == http.StatusNotFound:
		return wire.CodeNotFound
	case status == http.StatusConflict:
		return wire.CodeConflict
	case status == http.StatusRequestEntityTooLarge:
		return wire.CodeTooLarge
	case status == http.StatusTooManyRequests:
		return wire.CodeRateLimited
	case status >= 500:
		return wire.CodeUnavailable
	default:
		return wire.CodeBadRequest
	}
}

func badRequest(format string, args ...any) *Error {
	return &Error{Code: wire.CodeBadRequest, Message: fmt.Sprintf(format, args...)}
}
