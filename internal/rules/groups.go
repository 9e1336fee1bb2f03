package rules

import "github.com/magpie-im/magpie/internal/store"

// The group authorization table. Each function takes the actor's (and,
// where there is one, the target's) membership as the transaction loaded
// it, and says no with a Refusal or yes with nil.
//
//	operation         owner        admin               member
//	add               yes          yes                 open groups only
//	join (self)       —            —                   open groups only
//	leave (self)      transfer 1st yes                 yes
//	remove            not owner    plain members only  no (self: leave)
//	set role          not self     no                  no
//	transfer          yes          no                  no
//	mute              not self     plain members only  no
//	update, dissolve  yes          update only         no

// Member is a membership row.
type Member struct {
	Current bool // a member now (not left)
	Role    store.Role
}

// MayAdd lets the owner and admins add members, and anyone in an open group.
func MayAdd(actor Member, policy store.JoinPolicy) *Refusal {
	if policy != store.JoinOpen && actor.Role == store.RoleMember {
		return Refuse(NotModerator)
	}
	return nil
}

// MayJoin lets anyone join an open group.
func MayJoin(policy store.JoinPolicy) *Refusal {
	if policy != store.JoinOpen {
		return Refuse(InviteOnly)
	}
	return nil
}

// MayLeave keeps the owner in until ownership moves on.
func MayLeave(actor Member) *Refusal {
	if actor.Role == store.RoleOwner {
		return Refuse(LastOwner)
	}
	return nil
}

// MayRemove decides a removal of another member (removing oneself is
// leaving).
func MayRemove(actor, target Member) *Refusal {
	switch {
	case target.Role == store.RoleOwner:
		return Refuse(OwnerStays)
	case actor.Role == store.RoleMember:
		return Refuse(NotModerator)
	case actor.Role == store.RoleAdmin && target.Role != store.RoleMember:
		return Refuse(AdminLimits)
	}
	return nil
}

// MaySetRoleAtAll is the check before the target is loaded: only the
// owner sets roles, and nobody their own.
func MaySetRoleAtAll(actor Member, self bool) *Refusal {
	switch {
	case actor.Role != store.RoleOwner && self:
		return Refuse(OwnRole)
	case actor.Role != store.RoleOwner:
		return Refuse(NotOwner)
	}
	return nil
}

// MaySetRole decides the owner's change of target's role to role.
func MaySetRole(self bool, role store.Role) *Refusal {
	switch {
	case self:
		return Refuse(OwnRole)
	case role != store.RoleAdmin && role != store.RoleMember:
		return Refuse(RoleByTransfer)
	}
	return nil
}

// OnlyOwner guards transfer and dissolve.
func OnlyOwner(actor Member) *Refusal {
	if actor.Role != store.RoleOwner {
		return Refuse(NotOwner)
	}
	return nil
}

// OnlyModerators guards update and is the first check of mute.
func OnlyModerators(actor Member) *Refusal {
	if actor.Role == store.RoleMember {
		return Refuse(NotModerator)
	}
	return nil
}

// MayMute decides a mute of target by a moderator.
func MayMute(actor, target Member, self bool) *Refusal {
	switch {
	case self || target.Role == store.RoleOwner:
		return Refuse(MuteOwnerOrSelf)
	case actor.Role == store.RoleAdmin && target.Role != store.RoleMember:
		return Refuse(AdminLimits)
	}
	return nil
}

// Target is the one member an operation names; it must be a member now.
func Target(targets []int64) (int64, *Refusal) {
	if len(targets) != 1 {
		return 0, Refuse(OneTarget)
	}
	return targets[0], nil
}

// CurrentTarget refuses a target who is not a member now.
func CurrentTarget(m Member) *Refusal {
	if !m.Current {
		return Refuse(TargetNotMember)
	}
	return nil
}

// Fits keeps a group within max members (0: no limit).
func Fits(members, adding, max int) *Refusal {
	if max > 0 && members+adding > max {
		return Refuse(GroupFull)
	}
	return nil
}
