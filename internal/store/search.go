package store

import "context"

// Searcher is message search (GET /v1/search).
type Searcher interface {
	// Search returns up to Limit messages, skipping Offset, that contain
	// every term (case-insensitively), best first. Only text and file
	// messages the user may read are searched: inside their membership
	// windows, never a recalled message, and only a message's current
	// text (the text an edit replaced is not indexed). The index is
	// written in the transaction that stores or changes the message.
	Search(ctx context.Context, q SearchQuery) ([]Message, error)
}

// SearchQuery is one page of a search. Terms come from searchtext.Terms.
type SearchQuery struct {
	UserID         int64
	Terms          []string
	ConversationID string // "" for all of the user's conversations
	Limit          int
	Offset         int
}
