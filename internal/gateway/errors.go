package gateway

import "errors"

// ErrClosed is returned by ServeTCP after Drain or Shutdown, and by Drain
// and Shutdown's listeners.
var ErrClosed = errors.New("gateway: closed")

// Read-side failures, mapped to client-visible codes in session.readFailed
// (the one place they become codes).
var (
	errUndecodable = errors.New("gateway: undecodable frame")
	errTooLarge    = errors.New("gateway: frame too large")
	errWrongType   = errors.New("gateway: websocket message type does not match subprotocol")
)
