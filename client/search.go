package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SearchQuery is one page of a search of this user's messages (GET
// /v1/search). Every word of Text must occur in a hit, case-insensitively,
// anywhere in it (so words of scripts without spaces, such as Chinese, are
// found too).
type SearchQuery struct {
	Text           string
	ConversationID string // "" for all conversations
	Limit          int    // 0: the server's default (20); at most 100
	Cursor         string // "" for the first page, else SearchPage.NextCursor
}

// Span is a highlighted part of a hit's text, in code points (runes):
// []rune(Text)[Start:End].
type Span struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// SearchHit is a message that matched and where the words occur in it.
type SearchHit struct {
	Message    Message
	Highlights []Span
}

// SearchPage is a page of hits, best first; NextCursor is "" on the last.
type SearchPage struct {
	Hits       []SearchHit
	NextCursor string
}

// Search finds this user's messages (text and file captions, as they read
// now: not recalled ones, not the text an edit replaced).
func (c *Client) Search(ctx context.Context, q SearchQuery) (SearchPage, error) {
	v := url.Values{"q": {q.Text}}
	if q.ConversationID != "" {
		v.Set("conversation_id", q.ConversationID)
	}
	if q.Limit != 0 {
		if q.Limit < 0 || q.Limit > 100 {
			return SearchPage{}, badRequest("limit must be 0-100")
		}
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	var resp struct {
		Hits []struct {
			Message    jsonMessage `json:"message"`
			Highlights []Span      `json:"highlights"`
		} `json:"hits"`
		NextCursor string `json:"next_cursor"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/search?"+v.Encode(), nil, &resp); err != nil {
		return SearchPage{}, err
	}
	me := c.UserID()
	page := SearchPage{NextCursor: resp.NextCursor, Hits: make([]SearchHit, 0, len(resp.Hits))}
	for i := range resp.Hits {
		h := &resp.Hits[i]
		page.Hits = append(page.Hits, SearchHit{Message: *h.Message.message(me, ""), Highlights: h.Highlights})
	}
	return page, nil
}

// OnlineQuery is one page of the online users this user may see (GET
// /v1/users/online): by default their contacts (friends, group co-members,
// private chat peers), with --online-visibility all everyone of the app.
type OnlineQuery struct {
	Prefix string // names starting with it, case-insensitively ("" for all)
	Limit  int    // 0: the server's default (100); at most 500
	Cursor string // "" for the first page, else OnlinePage.NextCursor
}

// OnlinePage is a page of online users by name; NextCursor is "" on the last.
type OnlinePage struct {
	Users      []OnlineUser
	NextCursor string
}

// OnlineUsers pages through the online users (HTTP). OnlinePaged asks the
// same over the long connection; Online is the whole list in one answer.
func (c *Client) OnlineUsers(ctx context.Context, q OnlineQuery) (OnlinePage, error) {
	v := url.Values{}
	if q.Prefix != "" {
		v.Set("prefix", q.Prefix)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	path := "/v1/users/online"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var resp struct {
		Users []struct {
			UserID   int64    `json:"user_id"`
			Username string   `json:"username"`
			Devices  []string `json:"devices"`
		} `json:"users"`
		NextCursor string `json:"next_cursor"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return OnlinePage{}, err
	}
	page := OnlinePage{NextCursor: resp.NextCursor, Users: make([]OnlineUser, 0, len(resp.Users))}
	for _, u := range resp.Users {
		page.Users = append(page.Users, OnlineUser{UserID: u.UserID, Username: u.Username, Devices: u.Devices})
	}
	return page, nil
}

// ScheduledMessages lists this user's messages waiting to be sent, and
// those refused at their time (Status), soonest first (HTTP).
func (c *Client) ScheduledMessages(ctx context.Context) ([]ScheduledMessage, error) {
	var resp struct {
		Scheduled []struct {
			ScheduledMessage
			SendAt    int64  `json:"send_at"`
			CreatedAt int64  `json:"created_at"`
			RefusedAt int64  `json:"refused_at"`
			Code      string `json:"code"`
		} `json:"scheduled"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/messages/scheduled", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]ScheduledMessage, 0, len(resp.Scheduled))
	for _, m := range resp.Scheduled {
		sm := m.ScheduledMessage
		sm.SendAt, sm.CreatedAt = time.UnixMilli(m.SendAt), time.UnixMilli(m.CreatedAt)
		if m.RefusedAt != 0 {
			sm.RefusedAt = time.UnixMilli(m.RefusedAt)
		}
		if m.Code != "" {
			sm.Code = codeByName[m.Code]
		}
		if sm.Status == "" {
			sm.Status = ScheduledPending // a server from before refusals
		}
		out = append(out, sm)
	}
	return out, nil
}

// CancelScheduled drops a message scheduled with SendRequest.SendAt before
// it is sent, or a refused one from the list (HTTP). A not_found error means it was sent already (or was
// never this user's); conflict, that it is being sent at this moment.
func (c *Client) CancelScheduled(ctx context.Context, id int64) error {
	return c.authedJSON(ctx, http.MethodDelete, "/v1/messages/scheduled/"+strconv.FormatInt(id, 10), nil, nil)
}
