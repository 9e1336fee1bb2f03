package store

import "errors"

var (
	ErrNotFound      = errors.New("store: not found")
	ErrExists        = errors.New("store: already exists")
	ErrNotMember     = errors.New("store: not a member of the conversation")
	ErrSeqOutOfRange = errors.New("store: seq beyond the conversation's last message")
	ErrClosed        = errors.New("store: closed")
)
