package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Groups are managed over HTTP (docs/api.md); their messages, events and
// receipts travel like any other conversation's. A group's id ("g_…") is its
// conversation's id: send with SendRequest.ToGroup, read with History, mark
// read with MarkRead. Membership changes arrive as EVENT messages in the
// group's stream.

// Role is a member's role in a group.
type Role string

const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

// JoinPolicy says who may add members to a group.
type JoinPolicy string

const (
	JoinInvite JoinPolicy = "invite" // owners and admins add members
	JoinOpen   JoinPolicy = "open"   // anyone may join, and any member may add others
	// JoinApproval: owners and admins add members, and JoinGroup asks to
	// join; an owner or admin answers with ApproveJoin or RejectJoin.
	JoinApproval JoinPolicy = "approval"
)

// Group is a group as the server describes it. Members is empty in lists
// (Groups) and for non-members looking at an open group.
type Group struct {
	ID          string
	Name        string
	Owner       string
	JoinPolicy  JoinPolicy
	MutedUntil  time.Time // zero: not muted; otherwise only owners and admins may send until then
	MemberCount int
	CreatedAt   time.Time
	Members     []Member
	Intro       string
	Notice      string
	AvatarURL   string
	MaxMembers  int    // the group's own limit; 0: the server's only
	Version     uint64 // the group's last change (SyncGroups)
	Dissolved   bool
	// Requested: JoinGroup of an approval group stored a join request;
	// the other fields are empty.
	Requested bool
}

// Member is a member of a group.
type Member struct {
	UserID     int64
	Username   string
	Role       Role
	MutedUntil time.Time // zero: not muted
	JoinedAt   time.Time
}

// NewGroup describes a group to create. The creator becomes its owner.
type NewGroup struct {
	Name       string
	Members    []string   // usernames to add besides the creator
	JoinPolicy JoinPolicy // empty: the server's default (invite)
	Intro      string     // at most 512 bytes
	Notice     string     // at most 2048 bytes; line breaks allowed
	AvatarURL  string     // http(s), at most 1024 bytes
	MaxMembers int        // 0: the server's --max-group-size; at most that
}

// GroupUpdate changes a group's settings; nil fields stay as they are.
type GroupUpdate struct {
	Name       *string
	JoinPolicy *JoinPolicy
	MutedUntil *time.Time // mute everyone but owners and admins until then; a zero time unmutes
	Intro      *string
	Notice     *string
	AvatarURL  *string
	MaxMembers *int
}

// Reads says who has read a message of a conversation.
type Reads struct {
	Seq         uint64   `json:"seq"`
	ReadCount   int      `json:"read_count"`
	MemberCount int      `json:"member_count"`
	Readers     []string `json:"readers"`
}

type jsonMember struct {
	UserID     int64  `json:"user_id"`
	Username   string `json:"username"`
	Role       Role   `json:"role"`
	MutedUntil int64  `json:"muted_until"`
	JoinedAt   int64  `json:"joined_at"`
}

type jsonGroup struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Owner       string       `json:"owner"`
	JoinPolicy  JoinPolicy   `json:"join_policy"`
	MutedUntil  int64        `json:"muted_until"`
	MemberCount int          `json:"member_count"`
	CreatedAt   int64        `json:"created_at"`
	Members     []jsonMember `json:"members"`
	Intro       string       `json:"intro"`
	Notice      string       `json:"notice"`
	AvatarURL   string       `json:"avatar_url"`
	MaxMembers  int          `json:"max_members"`
	Version     uint64       `json:"version"`
	Dissolved   bool         `json:"dissolved"`
	Status      string       `json:"status"` // "requested": a join request was stored
}

func (g *jsonGroup) group() Group {
	out := Group{ID: g.ID, Name: g.Name, Owner: g.Owner, JoinPolicy: g.JoinPolicy,
		MutedUntil: unixMilli(g.MutedUntil), MemberCount: g.MemberCount, CreatedAt: unixMilli(g.CreatedAt),
		Intro: g.Intro, Notice: g.Notice, AvatarURL: g.AvatarURL, MaxMembers: g.MaxMembers, Version: g.Version,
		Dissolved: g.Dissolved, Requested: g.Status == "requested"}
	for _, m := range g.Members {
		out.Members = append(out.Members, Member{UserID: m.UserID, Username: m.Username, Role: m.Role,
			MutedUntil: unixMilli(m.MutedUntil), JoinedAt: unixMilli(m.JoinedAt)})
	}
	return out
}

func groupPath(id string, rest ...string) string {
	p := "/v1/groups/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// groupCall makes an HTTP call that answers with a group.
func (c *Client) groupCall(ctx context.Context, method, path string, in any) (Group, error) {
	var g jsonGroup
	if err := c.authedJSON(ctx, method, path, in, &g); err != nil {
		return Group{}, err
	}
	return g.group(), nil
}

// CreateGroup creates a group with this user as its owner and adds
// g.Members. The server stores a "created" event in the group's stream.
func (c *Client) CreateGroup(ctx context.Context, g NewGroup) (Group, error) {
	if g.Name == "" {
		return Group{}, badRequest("a group needs a name")
	}
	body := map[string]any{"name": g.Name, "members": append([]string{}, g.Members...)}
	if g.JoinPolicy != "" {
		body["join_policy"] = g.JoinPolicy
	}
	for k, v := range map[string]string{"intro": g.Intro, "notice": g.Notice, "avatar_url": g.AvatarURL} {
		if v != "" {
			body[k] = v
		}
	}
	if g.MaxMembers != 0 {
		body["max_members"] = g.MaxMembers
	}
	return c.groupCall(ctx, http.MethodPost, "/v1/groups", body)
}

// Group returns a group with its members. Non-members may see open groups,
// without members.
func (c *Client) Group(ctx context.Context, id string) (Group, error) {
	return c.groupCall(ctx, http.MethodGet, groupPath(id), nil)
}

// Groups lists this user's groups, without members.
func (c *Client) Groups(ctx context.Context) ([]Group, error) {
	var resp struct {
		Groups []jsonGroup `json:"groups"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/groups", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]Group, 0, len(resp.Groups))
	for i := range resp.Groups {
		out = append(out, resp.Groups[i].group())
	}
	return out, nil
}

// UpdateGroup changes a group's name, join policy or mute-all (owners and
// admins).
func (c *Client) UpdateGroup(ctx context.Context, id string, u GroupUpdate) (Group, error) {
	body := map[string]any{}
	if u.Name != nil {
		body["name"] = *u.Name
	}
	if u.JoinPolicy != nil {
		body["join_policy"] = *u.JoinPolicy
	}
	if u.MutedUntil != nil {
		body["muted_until"] = toUnixMilli(*u.MutedUntil)
	}
	for k, v := range map[string]*string{"intro": u.Intro, "notice": u.Notice, "avatar_url": u.AvatarURL} {
		if v != nil {
			body[k] = *v
		}
	}
	if u.MaxMembers != nil {
		body["max_members"] = *u.MaxMembers
	}
	return c.groupCall(ctx, http.MethodPatch, groupPath(id), body)
}

// AddMembers adds users to a group (owners and admins; any member of an
// open group). A full group is an *Error with wire.CodeConflict.
func (c *Client) AddMembers(ctx context.Context, id string, usernames ...string) (Group, error) {
	if len(usernames) == 0 {
		return Group{}, badRequest("no users to add")
	}
	return c.groupCall(ctx, http.MethodPost, groupPath(id, "members"), map[string]any{"usernames": usernames})
}

// JoinGroup makes this user a member of an open group. For a group of
// policy approval it asks to join: the Group returned has only Requested
// set, and the user becomes a member once an owner or admin approves.
func (c *Client) JoinGroup(ctx context.Context, id string) (Group, error) {
	return c.groupCall(ctx, http.MethodPost, groupPath(id, "join"), nil)
}

// LeaveGroup removes this user from a group. The owner must transfer
// ownership first (wire.CodeConflict otherwise).
func (c *Client) LeaveGroup(ctx context.Context, id string) error {
	return c.authedJSON(ctx, http.MethodPost, groupPath(id, "leave"), nil, nil)
}

// RemoveMember removes a user from a group: the owner removes anyone but
// themself, admins remove plain members.
func (c *Client) RemoveMember(ctx context.Context, id, username string) error {
	return c.authedJSON(ctx, http.MethodDelete, groupPath(id, "members", username), nil, nil)
}

// SetRole makes a member an admin or a plain member (owner only).
func (c *Client) SetRole(ctx context.Context, id, username string, role Role) error {
	if role != RoleAdmin && role != RoleMember {
		return badRequest("role must be admin or member (use TransferOwner for owner)")
	}
	return c.authedJSON(ctx, http.MethodPut, groupPath(id, "members", username, "role"), map[string]any{"role": role}, nil)
}

// TransferOwner makes another member the owner; the old owner becomes an
// admin (owner only).
func (c *Client) TransferOwner(ctx context.Context, id, username string) error {
	return c.authedJSON(ctx, http.MethodPost, groupPath(id, "owner"), map[string]any{"username": username}, nil)
}

// MuteMember keeps a member from sending until a time; a zero time unmutes
// (owners and admins).
func (c *Client) MuteMember(ctx context.Context, id, username string, until time.Time) error {
	return c.authedJSON(ctx, http.MethodPut, groupPath(id, "members", username, "mute"),
		map[string]any{"until": toUnixMilli(until)}, nil)
}

// DissolveGroup ends a group (owner only). A "dissolved" event is stored and
// no more messages are accepted.
func (c *Client) DissolveGroup(ctx context.Context, id string) error {
	return c.authedJSON(ctx, http.MethodDelete, groupPath(id), nil, nil)
}

// Reads says how many and which members have read message seq of a
// conversation (members of the conversation only).
func (c *Client) Reads(ctx context.Context, conversationID string, seq uint64) (Reads, error) {
	var r Reads
	path := "/v1/conversations/" + url.PathEscape(conversationID) + "/messages/" + strconv.FormatUint(seq, 10) + "/reads"
	err := c.authedJSON(ctx, http.MethodGet, path, nil, &r)
	return r, err
}

// JoinRequest is a pending request to join a group.
type JoinRequest struct {
	UserID   int64
	Username string
	At       time.Time
}

// JoinRequests lists a group's pending join requests (owners and admins).
func (c *Client) JoinRequests(ctx context.Context, id string) ([]JoinRequest, error) {
	var resp struct {
		Requests []struct {
			UserID   int64  `json:"user_id"`
			Username string `json:"username"`
			At       int64  `json:"at"`
		} `json:"requests"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, groupPath(id, "requests"), nil, &resp); err != nil {
		return nil, err
	}
	out := make([]JoinRequest, 0, len(resp.Requests))
	for _, r := range resp.Requests {
		out = append(out, JoinRequest{UserID: r.UserID, Username: r.Username, At: unixMilli(r.At)})
	}
	return out, nil
}

// ApproveJoin grants username's join request: they become a member (a
// full group is an *Error with wire.CodeConflict). Owners and admins.
func (c *Client) ApproveJoin(ctx context.Context, id, username string) error {
	return c.authedJSON(ctx, http.MethodPost, groupPath(id, "requests", username, "approve"), nil, nil)
}

// RejectJoin drops username's join request. Owners and admins.
func (c *Client) RejectJoin(ctx context.Context, id, username string) error {
	return c.authedJSON(ctx, http.MethodPost, groupPath(id, "requests", username, "reject"), nil, nil)
}

// GroupChange is one entry of SyncGroups: a group of mine as it is now
// (without members), or Left, one whose membership ended.
type GroupChange struct {
	Group
	Left bool
}

// GroupSync is what changed in this user's groups after a version.
type GroupSync struct {
	Groups []GroupChange
	Seq    uint64 // pass it as since next time
	More   bool   // the page was full: call again with Seq
}

// SyncGroups returns this user's groups that changed after version since
// (0: all, with the ones left), oldest change first, each group once.
func (c *Client) SyncGroups(ctx context.Context, since uint64) (GroupSync, error) {
	var resp struct {
		Groups []struct {
			jsonGroup
			Left bool `json:"left"`
		} `json:"groups"`
		Seq  uint64 `json:"seq"`
		More bool   `json:"more"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/groups/sync?since="+strconv.FormatUint(since, 10), nil, &resp); err != nil {
		return GroupSync{}, err
	}
	out := GroupSync{Seq: resp.Seq, More: resp.More, Groups: make([]GroupChange, 0, len(resp.Groups))}
	for i := range resp.Groups {
		out.Groups = append(out.Groups, GroupChange{Group: resp.Groups[i].group(), Left: resp.Groups[i].Left})
	}
	return out, nil
}
