package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Session is one login of this user (GET /v1/sessions).
type Session struct {
	ID        string
	Device    string
	Platform  string
	CreatedAt time.Time
	LastSeen  time.Time // now for a session that is online or current
	ExpiresAt time.Time
	Online    bool // a connection of it is live
	Current   bool // this Client's session
}

// Sessions lists this user's active sessions, oldest first.
func (c *Client) Sessions(ctx context.Context) ([]Session, error) {
	var resp struct {
		Sessions []struct {
			ID        string `json:"id"`
			Device    string `json:"device"`
			Platform  string `json:"platform"`
			CreatedAt int64  `json:"created_at"`
			LastSeen  int64  `json:"last_seen"`
			ExpiresAt int64  `json:"expires_at"`
			Online    bool   `json:"online"`
			Current   bool   `json:"current"`
		} `json:"sessions"`
	}
	if err := c.authedJSON(ctx, http.MethodGet, "/v1/sessions", nil, &resp); err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(resp.Sessions))
	for _, s := range resp.Sessions {
		out = append(out, Session{ID: s.ID, Device: s.Device, Platform: s.Platform, CreatedAt: time.UnixMilli(s.CreatedAt),
			LastSeen: time.UnixMilli(s.LastSeen), ExpiresAt: time.UnixMilli(s.ExpiresAt), Online: s.Online, Current: s.Current})
	}
	return out, nil
}

// EndSession ends one of this user's sessions; its connections close with
// logged_out. Ending this Client's own session closes this Client too. An
// unknown id (or another user's) is an *Error with wire.CodeNotFound.
func (c *Client) EndSession(ctx context.Context, id string) error {
	return c.authedJSON(ctx, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), nil, nil)
}

// LogoutAll ends every session of this user, on every device, and closes
// the client.
func (c *Client) LogoutAll(ctx context.Context) error {
	c.mu.Lock()
	li := c.auth
	c.mu.Unlock()
	var err error
	if li != nil {
		err = doJSON(ctx, c.hc, http.MethodPost, c.url("/v1/logout?all=true"), li.Token, nil, nil)
	}
	c.Close()
	return err
}

// ChangePassword replaces this user's password and ends every other
// session; this Client stays connected and logs in with the new password
// from now on. A wrong old password is an *Error with
// wire.CodeInvalidCredential.
func (c *Client) ChangePassword(ctx context.Context, oldPassword, newPassword string) error {
	body := map[string]string{"old": oldPassword, "new": newPassword}
	if err := c.authedJSON(ctx, http.MethodPost, "/v1/password", body, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.opts.Password = newPassword
	c.mu.Unlock()
	return nil
}
