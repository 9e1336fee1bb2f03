package chat

import (
	"context"
	"fmt"
	"strings"

	"github.com/magpie-im/magpie/client"
)

// searchLimit is how many hits :q shows: a terminal is for a glance; more
// words narrow the search.
const searchLimit = 20

// search is :q WORDS: the best hits over all my conversations, each
// with its seq (for :recall, :edit, :reads) and the words marked «so».
func (u *ui) search(ctx context.Context, words string) {
	page, err := u.c.Search(ctx, client.SearchQuery{Text: words, Limit: searchLimit})
	if err != nil {
		u.errorf(":q: %v", err)
		return
	}
	convs, err := u.c.Conversations(ctx)
	if err != nil {
		u.errorf(":q: %v", err)
		return
	}
	names := make(map[string]client.Conversation, len(convs))
	for _, cv := range convs {
		names[cv.ID] = cv
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(page.Hits) == 0 {
		fmt.Fprintf(u.out, "search %q: no messages\n", words)
		return
	}
	fmt.Fprintf(u.out, "search %q:\n", words)
	for _, h := range page.Hits {
		m := h.Message
		cv := names[m.ConversationID]
		group := cv.Name
		if group == "" {
			group = m.ConversationID
		}
		if !m.IsGroup() {
			m.Peer = cv.Peer
		}
		m.Text = mark(m.Text, h.Highlights)
		fmt.Fprintln(u.out, formatMessage(m, group)) // with its seq
	}
	if page.NextCursor != "" {
		fmt.Fprintf(u.out, "(more than %d: add words to narrow the search)\n", searchLimit)
	}
}

// mark puts «» around the highlighted spans (code point offsets).
func mark(text string, spans []client.Span) string {
	rs := []rune(text)
	var sb strings.Builder
	at := 0
	for _, s := range spans {
		if s.Start < at || s.End > len(rs) || s.Start >= s.End {
			continue
		}
		sb.WriteString(string(rs[at:s.Start]) + "«" + string(rs[s.Start:s.End]) + "»")
		at = s.End
	}
	sb.WriteString(string(rs[at:]))
	return sb.String()
}
