package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Friend is another user in one of this user's friend lists.
type Friend struct {
	UserID   int64
	Username string
	Since    time.Time // when the friendship, request or block began
}

// FriendList is this user's friends, pending requests and blocks.
type FriendList struct {
	Friends  []Friend
	Incoming []Friend // requests to me, waiting for AcceptFriend or DeclineFriend
	Outgoing []Friend // my requests, waiting for the other user
	Blocked  []Friend // users I blocked
}

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
		out = append(out, Friend{UserID: f.UserID, Username: f.Username, Since: time.Time(f.Since)})
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
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/friends", nil, &resp); err != nil {
		return FriendList{}, err
	}
	return FriendList{Friends: friends(resp.Friends), Incoming: friends(resp.Incoming),
		Outgoing: friends(resp.Outgoing), Blocked: friends(resp.Blocked)}, nil
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
