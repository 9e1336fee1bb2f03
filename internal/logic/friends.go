package logic

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/magpie-im/magpie/internal/store"
)

// Limits of a friend's remark and group (category), in bytes of UTF-8.
const (
	MaxFriendRemark = 64
	MaxFriendGroup  = 32
)

// Friend sync pages: the default and the most a request may ask for.
const (
	DefaultFriendSyncLimit = 500
	MaxFriendSyncLimit     = 1000
)

// validLabel checks a remark or group: "" clears it.
func validLabel(what, v string, maxLen int) error {
	if len(v) > maxLen || !utf8.ValidString(v) {
		return invalid(fmt.Sprintf("%s must be at most %d bytes of UTF-8", what, maxLen))
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return invalid(what + " must not contain control characters")
	}
	if strings.TrimSpace(v) != v {
		return invalid(what + " must not start or end with spaces")
	}
	return nil
}

// SetFriendInfo sets the remark (alias) and the group the user keeps for
// a friend, where given; "" clears one. Only the user sees them.
func (s *Service) SetFriendInfo(ctx context.Context, id Identity, name string, remark, group *string) (store.Contact, error) {
	if remark == nil && group == nil {
		return store.Contact{}, invalid("nothing to change: set remark or group")
	}
	if remark != nil {
		if err := validLabel("remark", *remark, MaxFriendRemark); err != nil {
			return store.Contact{}, err
		}
	}
	if group != nil {
		if err := validLabel("group", *group, MaxFriendGroup); err != nil {
			return store.Contact{}, err
		}
	}
	u, err := s.other(ctx, id.AppID, name)
	if err != nil {
		return store.Contact{}, err
	}
	c, err := s.store.SetFriendInfo(ctx, id.UserID, u.ID, remark, group)
	if errors.Is(err, store.ErrNotFound) {
		return store.Contact{}, notFound(u.Username+" is not your friend", err)
	} else if err != nil {
		return store.Contact{}, explain(err)
	}
	return c, nil
}

// SetFriendPolicy says who may add the user: "approve" (a request waits
// for the user), "anyone" (friends at once) or "nobody".
func (s *Service) SetFriendPolicy(ctx context.Context, id Identity, policy string) error {
	switch p := store.FriendPolicy(policy); p {
	case store.FriendApprove, store.FriendAnyone, store.FriendNobody:
		return explain(s.store.SetFriendPolicy(ctx, id.UserID, p))
	}
	return invalid(`policy must be "approve", "anyone" or "nobody"`)
}

// FriendSync is what changed in a user's friends after a friend seq.
type FriendSync struct {
	Changes []store.FriendChange
	Seq     uint64 // ask again after this one
	More    bool   // Changes was cut at the limit: ask again at once
}

// SyncFriends lists the changes to the user's friends after seq since
// (0: every friend), at most limit (0: the default).
func (s *Service) SyncFriends(ctx context.Context, id Identity, since uint64, limit int) (FriendSync, error) {
	if limit <= 0 {
		limit = DefaultFriendSyncLimit
	}
	if limit > MaxFriendSyncLimit {
		return FriendSync{}, invalid(fmt.Sprintf("limit must be at most %d", MaxFriendSyncLimit))
	}
	ch, cur, err := s.store.FriendChanges(ctx, id.UserID, since, limit+1)
	if err != nil {
		return FriendSync{}, explain(err)
	}
	out := FriendSync{Changes: ch, Seq: max(cur, since)}
	if len(ch) > limit {
		out.Changes, out.More = ch[:limit], true
	}
	if n := len(out.Changes); n > 0 && (out.More || out.Changes[n-1].Seq > out.Seq) {
		out.Seq = out.Changes[n-1].Seq
	}
	return out, nil
}

// FriendGroup is one of a user's friend groups (categories): the name
// the user gave some friends, with those friends by username.
type FriendGroup struct {
	Name    string
	Friends []store.Contact
}

// FriendGroups lists the user's friend groups by name; a group is there
// while a friend is in it. Friends without a group are in none.
func (s *Service) FriendGroups(ctx context.Context, id Identity) ([]FriendGroup, error) {
	c, err := s.store.Contacts(ctx, id.UserID)
	if err != nil {
		return nil, explain(err)
	}
	byName := map[string]int{}
	out := []FriendGroup{}
	for _, f := range c.Friends {
		if f.Group == "" {
			continue
		}
		i, ok := byName[f.Group]
		if !ok {
			i = len(out)
			byName[f.Group] = i
			out = append(out, FriendGroup{Name: f.Group})
		}
		out[i].Friends = append(out[i].Friends, f)
	}
	slices.SortFunc(out, func(a, b FriendGroup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
