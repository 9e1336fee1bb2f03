package logic

import (
	"context"
	"strconv"
	"strings"

	"github.com/magpie-im/magpie/internal/auth"
	"github.com/magpie-im/magpie/internal/store"
	"golang.org/x/crypto/bcrypt"
)

// MaxImport is the most users one ImportUsers call takes.
const MaxImport = 5000

// ImportUser is one user of an import from another system: a local
// account with its password hash (Argon2id as Magpie writes it, or
// bcrypt), or a user of an outside source with none.
type ImportUser struct {
	Username     string
	PasswordHash string
	AuthSource   string // "" or local, ldap, http, oidc
	DisplayName  string
	Email        string
	AvatarURL    string            // a profile's (profiles.go)
	Custom       map[string]string // the app's own profile fields
}

// ImportResult is what became of one ImportUser: Status "created",
// "exists" (the same name and source were there: nothing changed), or
// Err (invalid, or the name is held by a user of another source).
type ImportResult struct {
	Username string
	UserID   int64
	Status   string
	Err      error
}

// Import statuses.
const (
	ImportCreated = "created"
	ImportExists  = "exists"
)

// maxProfileField bounds an imported display name or email.
const maxProfileField = 256

// ImportUsers is the admin API's user import (POST
// /v1/admin/users/import): idempotent, so a migration script that stops
// halfway runs again from the start. Each user is checked on its own; the
// valid ones are stored in one transaction, in the app (0: the default).
func (s *Service) ImportUsers(ctx context.Context, app int64, users []ImportUser) ([]ImportResult, error) {
	if len(users) == 0 {
		return nil, invalid("users is empty")
	}
	if len(users) > MaxImport {
		return nil, tooLarge("more than 5000 users in one import: split it")
	}
	out := make([]ImportResult, len(users))
	var batch []store.User
	var at []int
	seen := map[string]int{}
	for i, u := range users {
		out[i].Username = u.Username
		if err := validImport(u); err != nil {
			out[i].Err = err
			continue
		}
		if j, dup := seen[strings.ToLower(u.Username)]; dup {
			out[i].Err = invalid("the same username as entry " + strconv.Itoa(j) + " of this import")
			continue
		}
		seen[strings.ToLower(u.Username)] = i
		src := u.AuthSource
		if src == "" {
			src = auth.Local
		}
		batch = append(batch, store.User{AppID: appOrDefault(app), Username: u.Username, PasswordHash: u.PasswordHash, AuthSource: src, DisplayName: u.DisplayName, Email: u.Email,
			AvatarURL: u.AvatarURL, Custom: u.Custom})
		at = append(at, i)
	}
	if len(batch) == 0 {
		return out, nil
	}
	res, err := s.store.ImportUsers(ctx, batch)
	if err != nil {
		return nil, err
	}
	for k, r := range res {
		o := &out[at[k]]
		o.UserID = r.User.ID
		switch {
		case !r.Existing:
			o.Status = ImportCreated
		case sourceOf(r.User) == batch[k].AuthSource:
			o.Status = ImportExists
		default:
			o.UserID = 0
			o.Err = &Error{Kind: KindConflict, Msg: "username is taken by a user of source " + sourceOf(r.User), Err: store.ErrExists}
		}
	}
	return out, nil
}

func validImport(u ImportUser) error {
	if err := validNewName(u.Username); err != nil {
		return invalid(err.Error())
	}
	if len(u.DisplayName) > maxProfileField || len(u.Email) > maxProfileField {
		return tooLarge("display_name and email are at most 256 bytes")
	}
	if u.AvatarURL != "" || u.Custom != nil {
		if err := validProfile(ProfileChange{AvatarURL: &u.AvatarURL, Custom: &u.Custom}); err != nil {
			return err
		}
	}
	switch u.AuthSource {
	case "", auth.Local:
		if !validHash(u.PasswordHash) {
			return invalid("a local user needs password_hash: Argon2id ($argon2id$v=19$m=…,t=…,p=…$salt$key) or bcrypt ($2a$, $2b$, $2y$)")
		}
	case auth.LDAP, auth.HTTP, auth.OIDC:
		if u.PasswordHash != "" {
			return invalid("a user of source " + u.AuthSource + " has no password_hash here: its source checks the password")
		}
	default:
		return invalid("auth_source must be local, ldap, http or oidc")
	}
	return nil
}

// maxBcryptCost bounds an imported bcrypt hash's cost (14: about a
// second per login).
const maxBcryptCost = 14

// validHash: a hash checkPassword can check, within the bounds that keep
// a login's cost sane; checked without hashing anything.
func validHash(h string) bool {
	if isBcrypt(h) {
		cost, err := bcrypt.Cost([]byte(h))
		return err == nil && cost <= maxBcryptCost
	}
	_, err := parseArgon2(h)
	return err == nil
}

func isBcrypt(h string) bool {
	return strings.HasPrefix(h, "$2a$") || strings.HasPrefix(h, "$2b$") || strings.HasPrefix(h, "$2y$")
}
