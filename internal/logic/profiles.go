package logic

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Profiles: a user sets their display name, avatar URL and the app's own
// fields; they and their contacts (friends, the members of their groups,
// the users they chat with) read them. Each change is a user.updated event.

// Bounds of a profile.
const (
	MaxDisplayName = 256
	MaxAvatarURL   = 1024
	MaxCustom      = 32   // fields
	MaxCustomValue = 1024 // bytes
)

var customKeyRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Profile is a user's profile as shown to them and their contacts, and as
// the data of a user.updated event.
type Profile struct {
	UserID      int64             `json:"user_id"`
	Username    string            `json:"username"`
	DisplayName string            `json:"display_name"`
	AvatarURL   string            `json:"avatar_url"`
	Custom      map[string]string `json:"custom"`
}

func profileOf(u store.User) Profile {
	custom := u.Custom
	if custom == nil {
		custom = map[string]string{}
	}
	return Profile{UserID: u.ID, Username: u.Username, DisplayName: u.DisplayName, AvatarURL: u.AvatarURL, Custom: custom}
}

// ProfileChange sets the fields that are not nil; Custom replaces the set.
type ProfileChange struct {
	DisplayName *string
	AvatarURL   *string
	Custom      *map[string]string
}

func validText(what string, v string, limit int) error {
	if len(v) > limit || !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return invalid(fmt.Sprintf("%s must be at most %d bytes of UTF-8 without control characters", what, limit))
	}
	return nil
}

func validProfile(c ProfileChange) error {
	if c.DisplayName == nil && c.AvatarURL == nil && c.Custom == nil {
		return invalid("nothing to change: give display_name, avatar_url or custom")
	}
	if c.DisplayName != nil {
		if err := validText("display_name", *c.DisplayName, MaxDisplayName); err != nil {
			return err
		}
	}
	if c.AvatarURL != nil && *c.AvatarURL != "" {
		u, err := url.Parse(*c.AvatarURL)
		if len(*c.AvatarURL) > MaxAvatarURL || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid(fmt.Sprintf("avatar_url must be an http:// or https:// URL of at most %d bytes, or empty", MaxAvatarURL))
		}
	}
	if c.Custom != nil {
		if len(*c.Custom) > MaxCustom {
			return invalid(fmt.Sprintf("custom has at most %d fields", MaxCustom))
		}
		for k, v := range *c.Custom {
			if !customKeyRE.MatchString(k) {
				return invalid(fmt.Sprintf("custom field %q: names are 1-64 of A-Z a-z 0-9 _ . -", k))
			}
			if err := validText("custom field "+k, v, MaxCustomValue); err != nil {
				return err
			}
		}
	}
	return nil
}

// UpdateProfile changes the caller's profile and tells the app's webhooks.
func (s *Service) UpdateProfile(ctx context.Context, id Identity, c ProfileChange) (Profile, error) {
	if err := validProfile(c); err != nil {
		return Profile{}, err
	}
	u, err := s.store.UpdateProfile(ctx, id.UserID, store.ProfileUpdate{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL, Custom: c.Custom})
	if err != nil {
		return Profile{}, explain(err)
	}
	p := profileOf(u)
	s.emit(id.AppID, "user.updated", p)
	return p, nil
}

// MyProfile is the caller's own profile.
func (s *Service) MyProfile(ctx context.Context, id Identity) (Profile, error) {
	u, err := s.store.UserByID(ctx, id.UserID)
	if err != nil {
		return Profile{}, explain(err)
	}
	return profileOf(u), nil
}

// ProfileOf is a user's profile, for themselves and their contacts only
// (others get 403: the name itself is public through GET /v1/users/{name}).
func (s *Service) ProfileOf(ctx context.Context, id Identity, name string) (Profile, error) {
	if err := wire.ValidName(name); err != nil {
		return Profile{}, invalid(err.Error())
	}
	u, err := s.store.UserByName(ctx, appOrDefault(id.AppID), name)
	if errors.Is(err, store.ErrNotFound) {
		return Profile{}, noUser(name)
	} else if err != nil {
		return Profile{}, err
	}
	if u.ID != id.UserID {
		contacts, err := s.store.ContactIDs(ctx, id.UserID)
		if err != nil {
			return Profile{}, err
		}
		if !slices.Contains(contacts, u.ID) {
			return Profile{}, forbidden("only "+u.Username+"'s contacts see the profile", store.ErrForbidden)
		}
	}
	return profileOf(u), nil
}
