package logic

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Friendships and groups for the admin API's imports (POST
// /v1/admin/friendships/import, /v1/admin/groups/import). Like the user
// import they are idempotent and judge each entry alone; the valid
// entries of a call are stored in one transaction. Imports are a
// migration's bulk load: they fire no webhooks and push nothing to
// online devices, which see the friends and groups at their next list or
// sync.

// Bounds of one import call.
const (
	MaxImportFriendships = 10000
	MaxImportGroups      = 1000
	MaxImportMembers     = 100000 // members over all groups of one call
	MaxExternalID        = 128
)

// ImportFriendship asks to make two users of the app friends.
type ImportFriendship struct {
	User, Friend string
}

// ImportGroup is a group from the system being migrated: ID is its id
// there (what makes the import idempotent), Owner its owner, Members the
// others with their roles ("member", the default, or "admin").
type ImportGroup struct {
	ID         string
	Name       string
	JoinPolicy string
	Owner      string
	Members    []ImportGroupMember
}

// ImportGroupMember is one member of an ImportGroup.
type ImportGroupMember struct {
	Username string
	Role     string
}

// ImportEntry is what became of one imported friendship or group:
// Status ImportCreated or ImportExists, or Err. GroupID is the group's
// Magpie id.
type ImportEntry struct {
	Status  string
	GroupID string
	Err     error
}

// usersIn finds the named users of an app, keyed by folded name.
func (s *Service) usersIn(ctx context.Context, app int64, names []string) (map[string]store.User, error) {
	users, err := s.store.UsersByName(ctx, appOrDefault(app), names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]store.User, len(users))
	for _, u := range users {
		out[strings.ToLower(u.Username)] = u
	}
	return out, nil
}

func noUser(name string) error { return notFound("no such user: "+name, store.ErrNotFound) }

// ImportFriendships makes each pair of the app's users friends.
func (s *Service) ImportFriendships(ctx context.Context, app int64, pairs []ImportFriendship) ([]ImportEntry, error) {
	if len(pairs) == 0 {
		return nil, invalid("friendships is empty")
	}
	if len(pairs) > MaxImportFriendships {
		return nil, tooLarge(fmt.Sprintf("more than %d friendships in one import: split it", MaxImportFriendships))
	}
	names := make([]string, 0, 2*len(pairs))
	for _, p := range pairs {
		names = append(names, p.User, p.Friend)
	}
	users, err := s.usersIn(ctx, app, names)
	if err != nil {
		return nil, err
	}
	out := make([]ImportEntry, len(pairs))
	var batch []store.Friendship
	var at []int
	for i, p := range pairs {
		if err := cmp.Or(wire.ValidName(p.User), wire.ValidName(p.Friend)); err != nil {
			out[i].Err = invalid(err.Error())
			continue
		}
		a, okA := users[strings.ToLower(p.User)]
		b, okB := users[strings.ToLower(p.Friend)]
		switch {
		case !okA:
			out[i].Err = noUser(p.User)
		case !okB:
			out[i].Err = noUser(p.Friend)
		case a.ID == b.ID:
			out[i].Err = invalid("a user cannot be their own friend")
		default:
			batch = append(batch, store.Friendship{UserID: a.ID, FriendID: b.ID, Since: s.now()})
			at = append(at, i)
		}
	}
	if len(batch) == 0 {
		return out, nil
	}
	created, err := s.store.ImportFriendships(ctx, batch)
	if err != nil {
		return nil, err
	}
	for k, c := range created {
		out[at[k]].Status = ImportExists
		if c {
			out[at[k]].Status = ImportCreated
		}
	}
	return out, nil
}

// ImportGroups creates the app's groups that were not imported before.
func (s *Service) ImportGroups(ctx context.Context, app int64, groups []ImportGroup) ([]ImportEntry, error) {
	if len(groups) == 0 {
		return nil, invalid("groups is empty")
	}
	if len(groups) > MaxImportGroups {
		return nil, tooLarge(fmt.Sprintf("more than %d groups in one import: split it", MaxImportGroups))
	}
	var names []string
	for _, g := range groups {
		names = append(names, g.Owner)
		for _, m := range g.Members {
			names = append(names, m.Username)
		}
	}
	if len(names)-len(groups) > MaxImportMembers {
		return nil, tooLarge(fmt.Sprintf("more than %d members in one import: split it", MaxImportMembers))
	}
	users, err := s.usersIn(ctx, app, names)
	if err != nil {
		return nil, err
	}
	maxSize := s.maxGroupOf(ctx, app)
	out := make([]ImportEntry, len(groups))
	var batch []store.ImportGroup
	var at []int
	seen := map[string]int{}
	for i, g := range groups {
		if j, dup := seen[g.ID]; dup {
			out[i].Err = invalid("the same id as entry " + strconv.Itoa(j) + " of this import")
			continue
		}
		ig, err := s.importGroup(g, users, maxSize)
		if err != nil {
			out[i].Err = err
			continue
		}
		seen[g.ID] = i
		batch = append(batch, ig)
		at = append(at, i)
	}
	if len(batch) == 0 {
		return out, nil
	}
	res, err := s.store.ImportGroups(ctx, appOrDefault(app), batch)
	if err != nil {
		return nil, explain(err)
	}
	for k, r := range res {
		out[at[k]] = ImportEntry{Status: ImportCreated, GroupID: r.GroupID}
		if r.Existing {
			out[at[k]].Status = ImportExists
		}
	}
	return out, nil
}

// importGroup checks one group and turns its names into users.
func (s *Service) importGroup(g ImportGroup, users map[string]store.User, maxSize int) (store.ImportGroup, error) {
	if g.ID == "" || len(g.ID) > MaxExternalID || strings.IndexFunc(g.ID, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return store.ImportGroup{}, invalid(fmt.Sprintf("id must be 1-%d printable ASCII characters without spaces", MaxExternalID))
	}
	if err := validGroupName(g.Name); err != nil {
		return store.ImportGroup{}, err
	}
	policy := g.JoinPolicy
	if policy == "" {
		policy = string(store.JoinInvite)
	}
	jp, err := validPolicy(policy)
	if err != nil {
		return store.ImportGroup{}, err
	}
	owner, ok := users[strings.ToLower(g.Owner)]
	if !ok {
		return store.ImportGroup{}, noUser(g.Owner)
	}
	if 1+len(g.Members) > maxSize {
		return store.ImportGroup{}, tooLarge(fmt.Sprintf("more than %d members (the app's group size limit)", maxSize))
	}
	ig := store.ImportGroup{ExternalID: g.ID, Name: g.Name, JoinPolicy: jp, OwnerID: owner.ID, At: s.now()}
	in := map[int64]bool{owner.ID: true}
	var ids []int64
	var usernames []string
	for _, m := range g.Members {
		u, ok := users[strings.ToLower(m.Username)]
		if !ok {
			return store.ImportGroup{}, noUser(m.Username)
		}
		if in[u.ID] {
			return store.ImportGroup{}, invalid(m.Username + " is named twice (the owner is not listed among the members)")
		}
		in[u.ID] = true
		role := store.Role(m.Role)
		switch role {
		case "":
			role = store.RoleMember
		case store.RoleMember, store.RoleAdmin:
		default:
			return store.ImportGroup{}, invalid(`role must be "member" or "admin" (the owner is "owner")`)
		}
		ig.Members = append(ig.Members, store.ImportMember{UserID: u.ID, Role: role})
		ids = append(ids, u.ID)
		usernames = append(usernames, u.Username)
	}
	ig.Event = store.Event{Type: "created", ActorID: owner.ID, Actor: owner.Username, UserIDs: ids, Usernames: usernames, Detail: g.Name}
	return ig, nil
}
