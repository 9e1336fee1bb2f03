package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Friend is another user in one of this user's friend lists.
type Friend struct {
	UserID   int64
	Username string
	Since    time.Time // when the friendship, request or block began
	// Friends only: the remark (alias) and group (category) this user
	// keeps for the friend (UpdateFriend), and this user's friend seq of
	// the friendship's last change.
	Remark string
	Group  string
	Seq    uint64
}

// FriendList is this user's friends, pending requests and blocks.
type FriendList struct {
	Friends  []Friend
	Incoming []Friend // requests to me, waiting for AcceptFriend or DeclineFriend
	Outgoing []Friend // my requests, waiting for the other user
	Blocked  []Friend // users I blocked
	Policy   FriendPolicy
	Seq      uint64 // this user's friend seq: pass it to SyncFriends next time
}

// FriendPolicy is who may add this user as a friend (SetFriendPolicy).
type FriendPolicy string

const (
	FriendApprove FriendPolicy = "approve" // requests wait for my answer (the default)
	FriendAnyone  FriendPolicy = "anyone"  // a request makes us friends at once
	FriendNobody  FriendPolicy = "nobody"  // requests are refused (403 forbidden)
)

// FriendStatus is the state a friend request left behind.
type FriendStatus string

const (
	FriendRequested FriendStatus = "requested" // waiting for the other user
	FriendsNow      FriendStatus = "friends"   // they had asked me already, or accepted
)

type jsonFriend struct {
	UserID   int64    `json:"user_id"`
	Username string   `json:"username"`
	Since    flexTime `json:"since"`
	Remark   string   `json:"remark"`
	Group    string   `json:"group"`
	Seq      uint64   `json:"seq"`
}

func (f jsonFriend) friend() Friend {
	return Friend{UserID: f.UserID, Username: f.Username, Since: time.Time(f.Since), Remark: f.Remark, Group: f.Group, Seq: f.Seq}
}

// flexTime decodes a time given as Unix milliseconds or as an RFC 3339
// string, so the SDK reads either form of the "since" field.
type flexTime time.Time

func (t *flexTime) UnmarshalJSON(b []byte) error {
	var ms int64
	if json.Unmarshal(b, &ms) == nil {
		*t = flexTime(unixMilli(ms))
		return nil
	}
	var tt time.Time
	if err := json.Unmarshal(b, &tt); err != nil {
		*t = flexTime{}
		return nil // an unreadable time is not worth failing the list for
	}
	*t = flexTime(tt)
	return nil
}

func friends(in []jsonFriend) []Friend {
	out := make([]Friend, 0, len(in))
	for _, f := range in {
		out = append(out, f.friend())
	}
	return out
}

// Friends returns this user's friends, pending requests and blocked users.
func (c *Client) Friends(ctx context.Context) (FriendList, error) {
	var resp struct {
		Friends  []jsonFriend `json:"friends"`
		Incoming []jsonFriend `json:"incoming"`
		Outgoing []jsonFriend `json:"outgoing"`
		Blocked  []jsonFriend `json:"blocked"`
		Policy   FriendPolicy `json:"policy"`
		Seq      uint64       `json:"seq"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/friends", nil, &resp); err != nil {
		return FriendList{}, err
	}
	return FriendList{Friends: friends(resp.Friends), Incoming: friends(resp.Incoming),
		Outgoing: friends(resp.Outgoing), Blocked: friends(resp.Blocked), Policy: resp.Policy, Seq: resp.Seq}, nil
}

// RequestFriend asks username to be friends. If they had already asked
// this user, the two become friends at once (FriendsNow).
func (c *Client) RequestFriend(ctx context.Context, username string) (FriendStatus, error) {
	var resp struct {
		Status FriendStatus `json:"status"`
	}
	err := c.authedJSON(ctx, http.MethodPost, "/v1/friends/requests", map[string]string{"username": username}, &resp)
	return resp.Status, err
}

// AcceptFriend accepts username's friend request.
func (c *Client) AcceptFriend(ctx context.Context, username string) error {
	return c.authedJSON(ctx, http.MethodPost, "/v1/friends/requests/"+url.PathEscape(username)+"/accept", nil, nil)
}

// DeclineFriend declines username's friend request.
func (c *Client) DeclineFriend(ctx context.Context, username string) error {
	return c.authedJSON(ctx, http.MethodPost, "/v1/friends/requests/"+url.PathEscape(username)+"/decline", nil, nil)
}

// RemoveFriend ends a friendship.
func (c *Client) RemoveFriend(ctx context.Context, username string) error {
	return c.authedJSON(ctx, http.MethodDelete, "/v1/friends/"+url.PathEscape(username), nil, nil)
}

// Block refuses username's private messages to this user: their sends get
// an *Error with wire.CodeBlocked.
func (c *Client) Block(ctx context.Context, username string) error {
	return c.authedJSON(ctx, http.MethodPost, "/v1/blocks", map[string]string{"username": username}, nil)
}

// Unblock lifts a block.
func (c *Client) Unblock(ctx context.Context, username string) error {
	return c.authedJSON(ctx, http.MethodDelete, "/v1/blocks/"+url.PathEscape(username), nil, nil)
}

// FriendUpdate changes what this user keeps for a friend: each field that
// is set (a pointer to "" clears it).
type FriendUpdate struct {
	Remark *string // an alias, at most 64 bytes
	Group  *string // a group (category) name, at most 32 bytes
}

// UpdateFriend sets a friend's remark or group. Only this user sees them.
// A stranger's name is an *Error with wire.CodeNotFound.
func (c *Client) UpdateFriend(ctx context.Context, username string, u FriendUpdate) (Friend, error) {
	body := map[string]*string{}
	if u.Remark != nil {
		body["remark"] = u.Remark
	}
	if u.Group != nil {
		body["group"] = u.Group
	}
	var resp jsonFriend
	if err := c.authedJSON(ctx, http.MethodPatch, "/v1/friends/"+url.PathEscape(username), body, &resp); err != nil {
		return Friend{}, err
	}
	return resp.friend(), nil
}

// SetFriendPolicy says who may add this user.
func (c *Client) SetFriendPolicy(ctx context.Context, p FriendPolicy) error {
	return c.authedJSON(ctx, http.MethodPut, "/v1/friends/policy", map[string]FriendPolicy{"policy": p}, nil)
}

// FriendChange is one entry of SyncFriends: a friend as they are now, or
// (Removed) a friendship that ended.
type FriendChange struct {
	Friend
	Removed bool
}

// FriendSync is what changed in this user's friends after a friend seq.
type FriendSync struct {
	Changes []FriendChange
	Seq     uint64 // pass it as since next time
	More    bool   // the page was full: call again with Seq
}

// SyncFriends returns the changes to this user's friends after friend
// seq since (0: every friend), oldest first, each friend once.
func (c *Client) SyncFriends(ctx context.Context, since uint64) (FriendSync, error) {
	var resp struct {
		Changes []struct {
			jsonFriend
			Removed bool `json:"removed"`
		} `json:"changes"`
		Seq  uint64 `json:"seq"`
		More bool   `json:"more"`
	}
	path := "/v1/friends/sync?since=" + strconv.FormatUint(since, 10)
	if err := c.authedJSON(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return FriendSync{}, err
	}
	out := FriendSync{Seq: resp.Seq, More: resp.More, Changes: make([]FriendChange, 0, len(resp.Changes))}
	for _, ch := range resp.Changes {
		out.Changes = append(out.Changes, FriendChange{Friend: ch.friend(), Removed: ch.Removed})
	}
	return out, nil
}

// FriendGroup is one of this user's friend groups with its friends.
type FriendGroup struct {
	Name    string
	Friends []Friend
}

// FriendGroups lists this user's friend groups by name (a group exists
// while a friend is in it).
func (c *Client) FriendGroups(ctx context.Context) ([]FriendGroup, error) {
	var resp struct {
		Groups []struct {
			Name    string       `json:"name"`
			Friends []jsonFriend `json:"friends"`
		} `json:"groups"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/friends/groups", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]FriendGroup, 0, len(resp.Groups))
	for _, g := range resp.Groups {
		out = append(out, FriendGroup{Name: g.Name, Friends: friends(g.Friends)})
	}
	return out, nil
}
