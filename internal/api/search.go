package api

import (
	"context"
	"net/http"

	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/internal/searchtext"
)

// Searcher is message search (search.go).
type Searcher interface {
	Search(ctx context.Context, id logic.Identity, req logic.SearchRequest) (logic.SearchPage, error)
}

func (h *Handler) registerSearch(mux *http.ServeMux) {
	h.handle(mux, "GET /v1/search", h.auth(h.search))
}

type searchHitJSON struct {
	Message    messageJSON       `json:"message"`
	Highlights []searchtext.Span `json:"highlights"`
}

// search is GET /v1/search?q=&conversation_id=&limit=&cursor=.
func (h *Handler) search(w http.ResponseWriter, r *http.Request, id logic.Identity) {
	q := r.URL.Query()
	limit, err := queryUint(r, "limit")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, err := h.svc.Search(r.Context(), id, logic.SearchRequest{Query: q.Get("q"), ConversationID: q.Get("conversation_id"),
		Limit: int(min(limit, logic.MaxSearchLimit)), Cursor: q.Get("cursor")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	hits := make([]searchHitJSON, 0, len(page.Hits))
	for _, hit := range page.Hits {
		spans := hit.Highlights
		if spans == nil {
			spans = []searchtext.Span{}
		}
		hits = append(hits, searchHitJSON{Message: messageOut(hit.Message), Highlights: spans})
	}
	writeJSON(w, http.StatusOK, map[string]any{"hits": hits, "next_cursor": page.NextCursor})
}
