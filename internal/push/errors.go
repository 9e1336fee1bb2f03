package push

import "errors"

// Reasons a signed request is refused. The HTTP API answers each with 401
// unauthenticated and the error's text, except ErrNonceCacheFull (429).
var (
	ErrMissingHeader  = errors.New("missing signature header")
	ErrBadTimestamp   = errors.New("X-Magpie-Timestamp must be unix seconds")
	ErrStale          = errors.New("timestamp outside the allowed window")
	ErrBadNonce       = errors.New("X-Magpie-Nonce must be 16-64 printable ASCII characters")
	ErrUnknownKey     = errors.New("unknown key")
	ErrBadSignature   = errors.New("signature does not match")
	ErrReplay         = errors.New("nonce already used")
	ErrNonceCacheFull = errors.New("too many signed requests in the replay window")
	ErrSignatureForm  = errors.New("X-Magpie-Signature must be 64 lowercase hex digits")
)
