package files

import (
	"errors"
	"fmt"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

var (
	// ErrNotFound is an unknown or malformed file id. It matches
	// store.ErrNotFound, as logic.Files requires.
	ErrNotFound = fmt.Errorf("file %w", store.ErrNotFound)
	// ErrTooLarge is an upload over the size limit.
	ErrTooLarge = errors.New("file too large")
	// ErrTypeNotAllowed is content whose sniffed type is not allowed, or
	// does not match the type the upload declared. The HTTP API answers
	// it with 415.
	ErrTypeNotAllowed = errors.New("content type not allowed")
	// ErrQuotaExceeded is an upload beyond the owner's --files-quota.
	ErrQuotaExceeded = errors.New("upload quota exceeded")
	// ErrEmpty is an upload with no bytes.
	ErrEmpty = errors.New("empty file")
)

// The errors a client can fix carry their client-visible code, so the
// edges map them through logic.Code like every other error.
func tooLarge(max int64) error {
	return &logic.Error{Code: wire.CodeTooLarge, Msg: fmt.Sprintf("file larger than %d bytes", max), Err: ErrTooLarge}
}

func typeNotAllowed(msg string) error {
	return &logic.Error{Code: wire.CodeBadRequest, Msg: msg, Err: ErrTypeNotAllowed}
}

func empty() error {
	return &logic.Error{Code: wire.CodeBadRequest, Msg: "empty file", Err: ErrEmpty}
}
