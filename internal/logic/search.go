package logic

import (
	"context"
	"errors"
	"strconv"

	"github.com/magpie-im/magpie/internal/searchtext"
	"github.com/magpie-im/magpie/internal/store"
)

// Limits of a search page (docs/api.md, GET /v1/search).
const (
	DefaultSearchLimit = 20
	MaxSearchLimit     = 100
	// MaxSearchOffset is how deep pages go: past it a query is too vague
	// to page through, and each page would cost the database more.
	MaxSearchOffset = 1000
)

// SearchRequest is one page of a search of the caller's messages.
type SearchRequest struct {
	Query          string
	ConversationID string // optional: one conversation only
	Limit          int    // 0: DefaultSearchLimit
	Cursor         string // "" for the first page, else a page's NextCursor
}

// SearchHit is a message that matched, with where the terms occur in its
// text.
type SearchHit struct {
	Message    store.Message
	Highlights []searchtext.Span
}

// SearchPage is one page of hits, best first. NextCursor is "" on the
// last page.
type SearchPage struct {
	Hits       []SearchHit
	NextCursor string
}

// Search finds the caller's messages that contain every term of the query
// (see store.Searcher for what is searched). The cursor is an offset in
// the ranked list: a message arriving between two pages may shift it.
func (s *Service) Search(ctx context.Context, id Identity, req SearchRequest) (SearchPage, error) {
	terms, err := searchtext.Terms(req.Query)
	if err != nil {
		if errors.Is(err, searchtext.ErrEmpty) {
			return SearchPage{}, invalid("q: give at least one word to search for")
		}
		return SearchPage{}, invalid("q: " + err.Error())
	}
	limit := req.Limit
	switch {
	case limit < 0:
		return SearchPage{}, invalid("limit must be between 1 and " + strconv.Itoa(MaxSearchLimit))
	case limit == 0:
		limit = DefaultSearchLimit
	case limit > MaxSearchLimit:
		limit = MaxSearchLimit
	}
	offset := 0
	if req.Cursor != "" {
		n, err := strconv.Atoi(req.Cursor)
		if err != nil || n < 0 || n > MaxSearchOffset {
			return SearchPage{}, invalid("cursor: not a cursor of a search page")
		}
		offset = n
	}
	if req.ConversationID != "" {
		if err := validConversationID(req.ConversationID); err != nil {
			return SearchPage{}, err
		}
		if _, err := s.visibleLastSeq(ctx, id, req.ConversationID); err != nil {
			return SearchPage{}, err
		}
	}
	limit = min(limit, MaxSearchOffset-offset)
	if limit == 0 {
		return SearchPage{Hits: []SearchHit{}}, nil
	}
	msgs, err := s.store.Search(ctx, store.SearchQuery{UserID: id.UserID, Terms: terms,
		ConversationID: req.ConversationID, Limit: limit + 1, Offset: offset})
	if err != nil {
		return SearchPage{}, err
	}
	page := SearchPage{Hits: make([]SearchHit, 0, min(len(msgs), limit))}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		if offset+limit < MaxSearchOffset {
			page.NextCursor = strconv.Itoa(offset + limit)
		}
	}
	for _, m := range msgs {
		page.Hits = append(page.Hits, SearchHit{Message: m, Highlights: searchtext.Highlights(m.Text, terms)})
	}
	return page, nil
}
