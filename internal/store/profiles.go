package store

import "context"

// Profiles are what users show of themselves (issue 12): a display name,
// an avatar URL and the app's own fields.
type Profiles interface {
	// UpdateProfile sets the fields of p that are not nil (Custom
	// replaces the whole set) and returns the user after it. ErrNotFound
	// if there is no such user (or it was deleted).
	UpdateProfile(ctx context.Context, userID int64, p ProfileUpdate) (User, error)
}

// ProfileUpdate is a change of a profile; nil fields stay as they are.
type ProfileUpdate struct {
	DisplayName *string
	AvatarURL   *string
	Custom      *map[string]string
}
