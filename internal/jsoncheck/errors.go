package jsoncheck

import "errors"

// Why a body is refused. Check wraps one of them in an *Error that says
// where. ErrSyntax and ErrTooDeep mean the bytes are not a JSON value Magpie
// will read at all; ErrInvalidText and ErrDuplicateKey mean they are
// well-formed JSON that no request may carry.
var (
	ErrSyntax       = errors.New("invalid JSON")
	ErrTooDeep      = errors.New("JSON nested too deep")
	ErrInvalidText  = errors.New("text is not valid UTF-8")
	ErrDuplicateKey = errors.New("duplicate key")
)
