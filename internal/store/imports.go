package store

import (
	"context"
	"time"
)

// Importer loads what a migration from another IM system brings besides
// users (issue 12's admin API): friendships and groups with their members.
// Each call is one transaction and idempotent: what is there already is
// reported and left as it is.
type Importer interface {
	// UsersByName finds users of an app by name, case-insensitively; the
	// names that exist, in any order.
	UsersByName(ctx context.Context, appID int64, names []string) ([]User, error)
	// ImportFriendships makes each pair friends (both directions) and
	// drops their pending requests. Results line up with pairs: true where
	// the friendship is new. Blocks are left alone.
	ImportFriendships(ctx context.Context, pairs []Friendship) ([]bool, error)
	// ImportGroups creates groups of an app, each with its "created"
	// event as seq 1 and its members in the given roles, unless a group of
	// the same ExternalID was imported into the app before: that one is
	// returned with Existing set, unchanged.
	ImportGroups(ctx context.Context, appID int64, groups []ImportGroup) ([]ImportGroupResult, error)
}

// Friendship is one imported friendship.
type Friendship struct {
	UserID, FriendID int64
	Since            time.Time
}

// ImportGroup is one group to import. OwnerID owns it; Members are the
// others (a Role of RoleOwner is refused by logic before it gets here).
type ImportGroup struct {
	ExternalID string
	Name       string
	JoinPolicy JoinPolicy
	OwnerID    int64
	Members    []ImportMember
	Event      Event
	At         time.Time
}

// ImportMember is one member of an ImportGroup.
type ImportMember struct {
	UserID int64
	Role   Role
}

// ImportGroupResult is what became of one ImportGroup.
type ImportGroupResult struct {
	GroupID  string
	Existing bool
}
