package files

import (
	"errors"
	"fmt"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/store"
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

// The errors a client can fix carry their kind and client-visible text,
// so the edges pick their code with logic.Code like every other error's.
func tooLarge(max int64) error {
	return &logic.Error{Kind: logic.KindTooLarge, Msg: fmt.Sprintf("file larger than %d bytes", max), Err: ErrTooLarge}
}

func typeNotAllowed(msg string) error {
	return &logic.Error{Kind: logic.KindInvalid, Msg: msg, Err: ErrTypeNotAllowed}
}

func empty() error {
	return &logic.Error{Kind: logic.KindInvalid, Msg: "empty file", Err: ErrEmpty}
}
