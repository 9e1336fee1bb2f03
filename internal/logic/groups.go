package logic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Groups: every change goes to the store as one GroupChange, which checks
// the actor's role and stores the change's EVENT message in the same
// transaction; the event is then pushed to the members (and to those the
// change removed) like any group message, so every device converges.

// MaxGroupName is the longest group name, in bytes.
const MaxGroupName = 64

// GroupEventData is the data of group.* hook events.
type GroupEventData struct {
	GroupID string   `json:"group_id"`
	Seq     uint64   `json:"seq"`
	Type    string   `json:"type"`
	Actor   string   `json:"actor"`
	Users   []string `json:"users,omitempty"`
	Detail  string   `json:"detail,omitempty"`
}

func validGroupName(name string) error {
	if name == "" || len(name) > MaxGroupName || !utf8.ValidString(name) {
		return invalid(fmt.Sprintf("name must be 1-%d bytes of UTF-8", MaxGroupName))
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return invalid("name must not contain control characters")
	}
	return nil
}

func validPolicy(p string) (store.JoinPolicy, error) {
	switch store.JoinPolicy(p) {
	case store.JoinInvite, store.JoinOpen, store.JoinApproval:
		return store.JoinPolicy(p), nil
	}
	return "", invalid(`join_policy must be "invite", "open" or "approval"`)
}

// resolve turns usernames into users; an unknown one fails the call.
func (s *Service) resolve(ctx context.Context, app int64, names []string) ([]int64, []string, error) {
	if len(names) > s.maxGroupOf(ctx, app) {
		return nil, nil, explain(rules.Refuse(rules.GroupFull))
	}
	ids := make([]int64, 0, len(names))
	out := make([]string, 0, len(names))
	for _, n := range names {
		if wire.ValidName(n) != nil {
			return nil, nil, invalid(fmt.Sprintf("%q is not a valid username", n))
		}
		u, err := s.userByName(ctx, app, n)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, notFound("no such user: "+n, err)
		} else if err != nil {
			return nil, nil, err
		}
		ids = append(ids, u.ID)
		out = append(out, u.Username)
	}
	return ids, out, nil
}

func (s *Service) maxGroup() int {
	if s.cfg.MaxGroupSize > 0 {
		return s.cfg.MaxGroupSize
	}
	return 5000
}

// CreateGroup makes a group owned by id with the named members.
func (s *Service) CreateGroup(ctx context.Context, id Identity, name string, members []string, policy string) (store.GroupInfo, error) {
	return s.CreateGroupWith(ctx, id, name, members, policy, GroupFields{})
}

// CreateGroupWith is CreateGroup with the group's profile and limit.
func (s *Service) CreateGroupWith(ctx context.Context, id Identity, name string, members []string, policy string, f GroupFields) (store.GroupInfo, error) {
	if err := validGroupName(name); err != nil {
		return store.GroupInfo{}, err
	}
	if err := s.validGroupFields(ctx, id.AppID, f); err != nil {
		return store.GroupInfo{}, err
	}
	if policy == "" {
		policy = string(store.JoinInvite)
	}
	jp, err := validPolicy(policy)
	if err != nil {
		return store.GroupInfo{}, err
	}
	ids, names, err := s.resolve(ctx, id.AppID, members)
	if err != nil {
		return store.GroupInfo{}, err
	}
	if len(names) > 0 {
		if err := s.beforeAdd(ctx, id.AppID, AddRequest{Kind: "member", Actor: id.Username, ActorID: id.UserID, Users: names}); err != nil {
			return store.GroupInfo{}, err
		}
	}
	g, ev, err := s.store.CreateGroup(ctx, store.NewGroup{
		Name: name, OwnerID: id.UserID, MemberIDs: ids, JoinPolicy: jp, MaxSize: s.maxGroupOf(ctx, id.AppID), At: s.now(),
		Intro: deref(f.Intro), Notice: deref(f.Notice), AvatarURL: deref(f.AvatarURL), MaxMembers: derefInt(f.MaxMembers),
		Event: store.Event{Type: "created", ActorID: id.UserID, Actor: id.Username, UserIDs: ids, Usernames: names, Detail: name},
	})
	if err != nil {
		return store.GroupInfo{}, explain(err)
	}
	s.announce(id.AppID, g, &ev, nil)
	return g, nil
}

// Group returns a group with its members to a member; a non-member sees
// an open group without its members.
func (s *Service) Group(ctx context.Context, id Identity, gid string) (store.GroupInfo, error) {
	if err := validGroupID(gid); err != nil {
		return store.GroupInfo{}, err
	}
	g, err := s.groupOfApp(ctx, id.AppID, gid)
	if err != nil {
		return store.GroupInfo{}, err
	}
	for _, m := range g.Members {
		if m.UserID == id.UserID {
			return g, nil
		}
	}
	if g.JoinPolicy == store.JoinOpen && !g.Dissolved {
		g.Members = nil
		return g, nil
	}
	return store.GroupInfo{}, explain(store.ErrNotMember)
}

// Groups lists the user's groups.
func (s *Service) Groups(ctx context.Context, id Identity) ([]store.GroupInfo, error) {
	return s.store.UserGroups(ctx, id.UserID)
}

// GroupUpdate changes settings where set. MutedUntil is unix ms; 0 ends a
// mute of everyone.
type GroupUpdate struct {
	Name       *string
	JoinPolicy *string
	MutedUntil *int64
	GroupFields
}

func (s *Service) UpdateGroup(ctx context.Context, id Identity, gid string, u GroupUpdate) (store.GroupInfo, error) {
	c := store.GroupChange{Op: store.OpUpdate}
	changed := map[string]any{}
	if u.Name != nil {
		if err := validGroupName(*u.Name); err != nil {
			return store.GroupInfo{}, err
		}
		c.Name, changed["name"] = u.Name, *u.Name
	}
	if u.JoinPolicy != nil {
		jp, err := validPolicy(*u.JoinPolicy)
		if err != nil {
			return store.GroupInfo{}, err
		}
		c.JoinPolicy, changed["join_policy"] = &jp, jp
	}
	if u.MutedUntil != nil {
		t, err := untilTime(*u.MutedUntil)
		if err != nil {
			return store.GroupInfo{}, err
		}
		c.MutedUntil, changed["muted_until"] = &t, *u.MutedUntil
	}
	if err := s.validGroupFields(ctx, id.AppID, u.GroupFields); err != nil {
		return store.GroupInfo{}, err
	}
	c.Intro, c.Notice, c.AvatarURL, c.MaxMembers = u.Intro, u.Notice, u.AvatarURL, u.MaxMembers
	for k, v := range map[string]*string{"intro": u.Intro, "notice": u.Notice, "avatar_url": u.AvatarURL} {
		if v != nil {
			changed[k] = *v
		}
	}
	if u.MaxMembers != nil {
		changed["max_members"] = *u.MaxMembers
	}
	if len(changed) == 0 {
		return store.GroupInfo{}, invalid("nothing to change: set name, join_policy, muted_until, intro, notice, avatar_url or max_members")
	}
	detail, _ := json.Marshal(changed)
	c.Event = store.Event{Type: "updated", Detail: string(detail)}
	res, err := s.changeGroup(ctx, id, gid, c)
	return res.Group, err
}

func untilTime(ms int64) (time.Time, error) {
	if ms < 0 {
		return time.Time{}, invalid("until must be unix milliseconds, or 0")
	}
	if ms == 0 {
		return time.Time{}, nil
	}
	return time.UnixMilli(ms), nil
}

// AddMembers adds users (owner and admins; any member of an open group).
func (s *Service) AddMembers(ctx context.Context, id Identity, gid string, names []string) (store.GroupInfo, error) {
	if len(names) == 0 {
		return store.GroupInfo{}, invalid("usernames is empty")
	}
	ids, resolved, err := s.resolve(ctx, id.AppID, names)
	if err != nil {
		return store.GroupInfo{}, err
	}
	if err := validGroupID(gid); err != nil {
		return store.GroupInfo{}, err
	}
	if err := s.beforeAdd(ctx, id.AppID, AddRequest{Kind: "member", Actor: id.Username, ActorID: id.UserID, GroupID: gid, Users: resolved}); err != nil {
		return store.GroupInfo{}, err
	}
	res, err := s.changeGroup(ctx, id, gid, store.GroupChange{Op: store.OpAdd, Targets: ids,
		Event: store.Event{Type: "added", UserIDs: ids, Usernames: resolved}})
	return res.Group, err
}

// JoinGroup adds the user to an open group, or asks to join a group of
// policy approval (requested: nothing else changed).
func (s *Service) JoinGroup(ctx context.Context, id Identity, gid string) (g store.GroupInfo, requested bool, err error) {
	if err := validGroupID(gid); err != nil {
		return store.GroupInfo{}, false, err
	}
	if err := s.beforeAdd(ctx, id.AppID, AddRequest{Kind: "member", Actor: id.Username, ActorID: id.UserID, GroupID: gid, Users: []string{id.Username}}); err != nil {
		return store.GroupInfo{}, false, err
	}
	res, err := s.changeGroup(ctx, id, gid, store.GroupChange{Op: store.OpJoin,
		Event: store.Event{Type: "joined", UserIDs: []int64{id.UserID}, Usernames: []string{id.Username}}})
	if err == nil && res.Requested {
		s.emit(id.AppID, "group.join_requested", GroupEventData{GroupID: gid, Type: "join_requested", Actor: id.Username})
		var runners []int64 // the owner and admins: who may approve
		for _, m := range res.Group.Members {
			if m.Role == store.RoleOwner || m.Role == store.RoleAdmin {
				runners = append(runners, m.UserID)
			}
		}
		s.notify(runners, store.Notice{Type: store.NoticeJoinRequested, ActorID: id.UserID, Actor: id.Username, GroupID: gid, GroupName: res.Group.Name})
		res.Group.Members = nil // not a member yet
	}
	return res.Group, res.Requested, err
}

func (s *Service) LeaveGroup(ctx context.Context, id Identity, gid string) error {
	_, err := s.changeGroup(ctx, id, gid, store.GroupChange{Op: store.OpLeave,
		Event: store.Event{Type: "left", UserIDs: []int64{id.UserID}, Usernames: []string{id.Username}}})
	return err
}

// targetChange is a change aimed at one named member.
func (s *Service) targetChange(ctx context.Context, id Identity, gid, name string, c store.GroupChange) error {
	ids, names, err := s.resolve(ctx, id.AppID, []string{name})
	if err != nil {
		return err
	}
	c.Targets = ids
	c.Event.UserIDs, c.Event.Usernames = ids, names
	_, err = s.changeGroup(ctx, id, gid, c)
	return err
}

// RemoveMember removes name; removing oneself is leaving.
func (s *Service) RemoveMember(ctx context.Context, id Identity, gid, name string) error {
	typ := "removed"
	if strings.EqualFold(name, id.Username) {
		typ = "left"
	}
	return s.targetChange(ctx, id, gid, name, store.GroupChange{Op: store.OpRemove, Event: store.Event{Type: typ}})
}

func (s *Service) SetRole(ctx context.Context, id Identity, gid, name, role string) error {
	r := store.Role(role)
	if r != store.RoleAdmin && r != store.RoleMember {
		return invalid(`role must be "admin" or "member" (transfer ownership to make an owner)`)
	}
	return s.targetChange(ctx, id, gid, name, store.GroupChange{Op: store.OpSetRole, Role: r, Event: store.Event{Type: "role", Detail: role}})
}

// TransferOwnership makes name the owner; the old owner becomes an admin.
func (s *Service) TransferOwnership(ctx context.Context, id Identity, gid, name string) error {
	return s.targetChange(ctx, id, gid, name, store.GroupChange{Op: store.OpTransfer, Event: store.Event{Type: "owner", Detail: "owner"}})
}

// MuteMember mutes name until unix ms until; 0 unmutes.
func (s *Service) MuteMember(ctx context.Context, id Identity, gid, name string, until int64) error {
	t, err := untilTime(until)
	if err != nil {
		return err
	}
	ev := store.Event{Type: "muted", Detail: strconv.FormatInt(until, 10)}
	if until == 0 {
		ev = store.Event{Type: "unmuted"}
	}
	return s.targetChange(ctx, id, gid, name, store.GroupChange{Op: store.OpMute, Until: t, Event: ev})
}

// DissolveGroup ends the group for everyone (owner only).
func (s *Service) DissolveGroup(ctx context.Context, id Identity, gid string) error {
	_, err := s.changeGroup(ctx, id, gid, store.GroupChange{Op: store.OpDissolve, Event: store.Event{Type: "dissolved"}})
	return err
}

func (s *Service) changeGroup(ctx context.Context, id Identity, gid string, c store.GroupChange) (store.GroupChangeResult, error) {
	if err := validGroupID(gid); err != nil {
		return store.GroupChangeResult{}, err
	}
	if c.Op == store.OpJoin {
		// The one change a non-member makes: only to a group of its app.
		if _, err := s.groupOfApp(ctx, id.AppID, gid); err != nil {
			return store.GroupChangeResult{}, err
		}
	}
	c.GroupID, c.ActorID, c.At, c.MaxSize = gid, id.UserID, s.now(), s.maxGroupOf(ctx, id.AppID)
	c.Event.ActorID, c.Event.Actor = id.UserID, id.Username
	res, err := s.store.ChangeGroup(ctx, c)
	if err != nil {
		return store.GroupChangeResult{}, explain(err)
	}
	if res.Event != nil {
		s.announce(id.AppID, res.Group, res.Event, res.Former)
	}
	return res, nil
}

// hookTypes names the hook event of each group event type.
var hookTypes = map[string]string{
	"created": "group.created", "added": "group.member_added", "joined": "group.member_added",
	"removed": "group.member_removed", "left": "group.member_left", "role": "group.role_changed",
	"owner": "group.role_changed", "dissolved": "group.dissolved", "muted": "group.updated",
	"unmuted": "group.updated", "updated": "group.updated", "approved": "group.member_added",
}

// announce pushes a stored event to the devices of the members and of the
// former members, and tells the hooks of app, the actor's (a group's users
// are all of one app; a dissolved group has no owner left to ask).
func (s *Service) announce(app int64, g store.GroupInfo, ev *store.Message, former []int64) {
	var conns []*clusterpb.ConnRef
	for _, m := range g.Members {
		conns = s.presence.AppendConns(conns, m.UserID)
	}
	for _, uid := range former {
		conns = s.presence.AppendConns(conns, uid)
	}
	if len(conns) > 0 {
		s.publish(conns, s.enc.Message(*ev, ""))
	}
	if e := ev.Event; e != nil {
		s.emit(app, hookTypes[e.Type], GroupEventData{GroupID: g.ID, Seq: ev.Seq, Type: e.Type, Actor: e.Actor, Users: e.Usernames, Detail: e.Detail})
		if typ := noticeTypes[e.Type]; typ != "" {
			s.notify(slices.DeleteFunc(slices.Clone(e.UserIDs), func(u int64) bool { return u == e.ActorID }),
				store.Notice{Type: typ, ActorID: e.ActorID, Actor: e.Actor, GroupID: g.ID, GroupName: g.Name})
		}
	}
}

// noticeTypes names the notice the users of a group event get: those
// added (when the group is made, added by someone, approved) and those
// removed by someone, never the actor.
var noticeTypes = map[string]string{
	"created": store.NoticeGroupAdded, "added": store.NoticeGroupAdded, "approved": store.NoticeGroupAdded,
	"removed": store.NoticeGroupRemoved,
}

// groupOfApp reads a group of the app; a group of another app is not
// found, like one that does not exist. Its app is its owner's: members
// are only ever found by name within the app, and ownership moves only
// to a member.
func (s *Service) groupOfApp(ctx context.Context, app int64, gid string) (store.GroupInfo, error) {
	g, err := s.store.Group(ctx, gid)
	if err != nil {
		return store.GroupInfo{}, explain(err)
	}
	owner, err := s.appOf(ctx, g.OwnerID)
	if err != nil {
		return store.GroupInfo{}, err
	}
	if owner != appOrDefault(app) {
		return store.GroupInfo{}, explain(fmt.Errorf("group %s: %w", gid, store.ErrNotFound))
	}
	return g, nil
}
