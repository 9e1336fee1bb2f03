package logic

import (
	"errors"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/proto/wire"
)

// codes is the one table from an error's kind to its wire code
// (proto/wire/codes.json); nothing else in logic names an error code.
var codes = [numKinds]wire.Code{
	KindInternal:           wire.CodeInternal,
	KindInvalid:            wire.CodeBadRequest,
	KindTooLarge:           wire.CodeTooLarge,
	KindNotFound:           wire.CodeNotFound,
	KindConflict:           wire.CodeConflict,
	KindForbidden:          wire.CodeForbidden,
	KindNotMember:          wire.CodeNotMember,
	KindSeqOutOfRange:      wire.CodeSeqOutOfRange,
	KindRateLimited:        wire.CodeRateLimited,
	KindUnavailable:        wire.CodeUnavailable,
	KindUnauthenticated:    wire.CodeUnauthenticated,
	KindSessionExpired:     wire.CodeSessionExpired,
	KindInvalidCredentials: wire.CodeInvalidCredential,
	KindDeviceLimit:        wire.CodeDeviceLimit,
	KindUndecodable:        wire.CodeProtocolError,
	KindUnknownCommand:     wire.CodeUnknownCommand,
	KindLoggedOut:          wire.CodeLoggedOut,
	KindReplaced:           wire.CodeReplaced,
}

// Code is an error's client-visible code: the one function both edges
// (the HTTP API's status and body, the adapter's error replies on the long
// connection) choose codes with. A rule's refusal carries its own code; 0
// for nil.
func Code(err error) wire.Code {
	var e *Error
	var refusal *rules.Refusal
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return codes[e.Kind]
	case errors.As(err, &refusal):
		return refusal.Code()
	}
	return codes[kindOf(err)]
}
