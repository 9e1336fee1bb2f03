package logic

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/wire"
)

// OnlineVisibility says whose presence a user may see (--online-visibility).
type OnlineVisibility string

const (
	// OnlineContacts: friends, the other members of my current groups and
	// the other user of each of my private chats (and myself).
	OnlineContacts OnlineVisibility = "contacts"
	// OnlineAll: every user of my app.
	OnlineAll OnlineVisibility = "all"
)

// Pages of GET /v1/users/online.
const (
	DefaultOnlinePage = 100
	MaxOnlinePage     = 500
)

// OnlineQuery asks for a page of the online users I may see whose names
// start with Prefix (case-insensitively), after Cursor.
type OnlineQuery struct {
	Prefix string
	Limit  int    // 0: DefaultOnlinePage; clamped to MaxOnlinePage
	Cursor string // "" first; else OnlinePage.NextCursor
}

// OnlinePage is one page, by username (case-insensitively); NextCursor is
// "" on the last one.
type OnlinePage struct {
	Users      []OnlineUser `json:"users"`
	NextCursor string       `json:"next_cursor"`
}

// Online lists the online users the user may see (--online-visibility),
// with their devices, sorted by username.
func (s *Service) Online(ctx context.Context, id Identity) ([]OnlineUser, error) {
	users, err := s.visibleOnline(ctx, id)
	if err != nil {
		return nil, err
	}
	sortOnline(users)
	return users, nil
}

// OnlinePage is Online by prefix and in pages.
func (s *Service) OnlinePage(ctx context.Context, id Identity, q OnlineQuery) (OnlinePage, error) {
	if q.Prefix != "" {
		if len(q.Prefix) > wire.MaxUsername || strings.Trim(q.Prefix, nameChars) != "" {
			return OnlinePage{}, invalid("prefix: at most 32 of A-Z a-z 0-9 _ -")
		}
	}
	if q.Cursor != "" && wire.ValidName(q.Cursor) != nil {
		return OnlinePage{}, invalid("cursor: not a cursor this route gave")
	}
	if q.Limit <= 0 {
		q.Limit = DefaultOnlinePage
	}
	q.Limit = min(q.Limit, MaxOnlinePage)
	users, err := s.visibleOnline(ctx, id)
	if err != nil {
		return OnlinePage{}, err
	}
	prefix, after := strings.ToLower(q.Prefix), strings.ToLower(q.Cursor)
	users = slices.DeleteFunc(users, func(u OnlineUser) bool {
		name := strings.ToLower(u.Username)
		return !strings.HasPrefix(name, prefix) || (after != "" && name <= after)
	})
	slices.SortFunc(users, func(a, b OnlineUser) int {
		return strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username))
	})
	page := OnlinePage{Users: users}
	if len(users) > q.Limit {
		page.Users = users[:q.Limit]
		page.NextCursor = strings.ToLower(page.Users[q.Limit-1].Username)
	}
	return page, nil
}

// reservedNames cannot be registered: GET /v1/users/{username} would
// not reach them (GET /v1/users/online is the online list). Accounts made
// before the reservation keep working; they are only not found by that
// lookup.
var reservedNames = []string{"online"}

// validNewName checks the name of an account being created.
func validNewName(name string) error {
	if err := wire.ValidName(name); err != nil {
		return err
	}
	if slices.Contains(reservedNames, strings.ToLower(name)) {
		return fmt.Errorf("username %q is reserved (GET /v1/users/%s is another route)", name, strings.ToLower(name))
	}
	return nil
}

// nameChars are the characters of a username (wire.ValidName).
const nameChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// visibleOnline is every online user of the caller's app that the caller
// may see, unsorted.
func (s *Service) visibleOnline(ctx context.Context, id Identity) ([]OnlineUser, error) {
	var online map[int64][]*clusterpb.ConnRef
	var ids []int64
	if s.cfg.OnlineVisibility == OnlineAll {
		online = s.presence.Online()
		ids = make([]int64, 0, len(online))
		for uid := range online {
			ids = append(ids, uid)
		}
	} else {
		// Only my contacts' connections: not a copy of everyone online.
		contacts, err := s.store.ContactIDs(ctx, id.UserID)
		if err != nil {
			return nil, err
		}
		online = make(map[int64][]*clusterpb.ConnRef)
		for _, uid := range append(contacts, id.UserID) {
			if conns := s.presence.Conns(uid); len(conns) > 0 {
				online[uid] = conns
				ids = append(ids, uid)
			}
		}
	}
	users, err := s.store.UsersByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]OnlineUser, 0, len(users))
	for _, u := range users {
		if appOrDefault(u.AppID) != appOrDefault(id.AppID) {
			continue
		}
		out = append(out, OnlineUser{UserID: u.ID, Username: u.Username, Devices: devicesOf(online[u.ID])})
	}
	return out, nil
}

// devicesOf names the devices of a user's connections, each once.
func devicesOf(conns []*clusterpb.ConnRef) []string {
	out := []string{}
	for _, c := range conns {
		if !slices.Contains(out, c.Device) {
			out = append(out, c.Device)
		}
	}
	return out
}
