package logic

import (
	"context"
	"fmt"
	"net/url"

	"github.com/magpie-im/magpie/internal/store"
)

// Limits of a group's profile, in bytes.
const (
	MaxGroupIntro  = 512
	MaxGroupNotice = 2048
)

// Group sync pages: the default and the most a request may ask for.
const (
	DefaultGroupSyncLimit = 200
	MaxGroupSyncLimit     = 500
)

// GroupFields are a group's profile and own member limit, where set.
type GroupFields struct {
	Intro      *string
	Notice     *string
	AvatarURL  *string
	MaxMembers *int // 0: the server's (app's) --max-group-size only
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func (s *Service) validGroupFields(ctx context.Context, app int64, f GroupFields) error {
	if f.Intro != nil {
		if err := validText("intro", *f.Intro, MaxGroupIntro); err != nil {
			return err
		}
	}
	if f.Notice != nil {
		if err := validNotice(*f.Notice); err != nil {
			return err
		}
	}
	if f.AvatarURL != nil && *f.AvatarURL != "" {
		u, err := url.Parse(*f.AvatarURL)
		if len(*f.AvatarURL) > MaxAvatarURL || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid(fmt.Sprintf("avatar_url must be an http:// or https:// URL of at most %d bytes, or empty", MaxAvatarURL))
		}
	}
	if f.MaxMembers != nil {
		if limit := s.maxGroupOf(ctx, app); *f.MaxMembers < 0 || *f.MaxMembers > limit {
			return invalid(fmt.Sprintf("max_members must be from 0 (the server's limit) to %d (--max-group-size)", limit))
		}
	}
	return nil
}

// validNotice allows line breaks and tabs in a notice, unlike a name.
func validNotice(v string) error {
	clean := []rune{}
	for _, r := range v {
		if r != '\n' && r != '\t' && r != '\r' {
			clean = append(clean, r)
		}
	}
	if len(v) > MaxGroupNotice {
		return invalid(fmt.Sprintf("notice must be at most %d bytes of UTF-8 without control characters other than line breaks and tabs", MaxGroupNotice))
	}
	if err := validText("notice", string(clean), MaxGroupNotice); err != nil {
		return invalid(fmt.Sprintf("notice must be at most %d bytes of UTF-8 without control characters other than line breaks and tabs", MaxGroupNotice))
	}
	return nil
}

// JoinRequests lists a group's pending join requests to its owner and
// admins.
func (s *Service) JoinRequests(ctx context.Context, id Identity, gid string) ([]store.JoinRequest, error) {
	if err := validGroupID(gid); err != nil {
		return nil, err
	}
	g, err := s.groupOfApp(ctx, id.AppID, gid)
	if err != nil {
		return nil, err
	}
	for _, m := range g.Members {
		if m.UserID != id.UserID {
			continue
		}
		if m.Role == store.RoleMember {
			return nil, forbidden("only the owner and admins may do that", store.ErrForbidden)
		}
		reqs, err := s.store.JoinRequests(ctx, gid)
		return reqs, explain(err)
	}
	return nil, explain(store.ErrNotMember)
}

// AnswerJoin approves (the user joins) or rejects name's join request.
func (s *Service) AnswerJoin(ctx context.Context, id Identity, gid, name string, approve bool) error {
	c := store.GroupChange{Op: store.OpReject}
	if approve {
		c = store.GroupChange{Op: store.OpApprove, Event: store.Event{Type: "approved"}}
		if err := validGroupID(gid); err != nil {
			return err
		}
		if err := s.beforeAdd(ctx, id.AppID, AddRequest{Kind: "member", Actor: id.Username, ActorID: id.UserID, GroupID: gid, Users: []string{name}}); err != nil {
			return err
		}
	}
	return s.targetChange(ctx, id, gid, name, c)
}

// GroupSync is what changed in a user's groups after a version.
type GroupSync struct {
	Groups []store.GroupSyncEntry
	Seq    uint64 // ask again after this one
	More   bool
}

// SyncGroups lists the user's groups changed after version since (0: all
// of them, and those they left), at most limit (0: the default).
func (s *Service) SyncGroups(ctx context.Context, id Identity, since uint64, limit int) (GroupSync, error) {
	if limit <= 0 {
		limit = DefaultGroupSyncLimit
	}
	if limit > MaxGroupSyncLimit {
		return GroupSync{}, invalid(fmt.Sprintf("limit must be at most %d", MaxGroupSyncLimit))
	}
	es, cur, err := s.store.GroupChanges(ctx, id.UserID, since, limit+1)
	if err != nil {
		return GroupSync{}, explain(err)
	}
	out := GroupSync{Groups: es, Seq: max(cur, since)}
	if len(es) > limit {
		out.Groups, out.More = es[:limit], true
	}
	if n := len(out.Groups); n > 0 && (out.More || out.Groups[n-1].Version > out.Seq) {
		out.Seq = out.Groups[n-1].Version
	}
	return out, nil
}
