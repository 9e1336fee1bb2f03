// Package rules is Magpie's product rules as pure functions: who may send
// where (mutes, blocks, friendship), who may recall or edit what, the
// group authorization table, friend and block requests, and how receipt
// cursors move. It does no I/O. A store loads and locks the state a rule
// needs inside the transaction that then writes (so a change committed
// before a seq is assigned is always seen), asks the rule, and writes or
// returns the rule's *Refusal. The store never words a refusal; the edges
// never parse one: a Refusal carries its wire code and its client text.
//
// Everything here is safe for concurrent use.
package rules

import (
	"fmt"
	"time"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Reason names why a rule said no. The list only grows.
type Reason uint8

const (
	_ Reason = iota
	NotMember
	SeqOutOfRange
	Muted
	GroupMuted
	Blocked
	NotFriends
	NoSuchMessage
	NotChangeable
	NotYours
	RecallWindow
	NotOwner
	NotModerator
	OwnerStays
	OwnRole
	RoleByTransfer
	InviteOnly
	AdminLimits
	MuteOwnerOrSelf
	TargetNotMember
	OneTarget
	NoSuchUser
	GroupFull
	LastOwner
	SelfFriend
	SelfBlock
	FriendsClosed
	LimitBelowCount
	NoJoinRequest
)

// reasons holds, per Reason, the wire code, the store sentinel that
// errors.Is matches (the store's contract names them), and the text.
var reasons = [...]struct {
	code wire.Code
	is   error
	text string
}{
	NotMember:       {wire.CodeNotMember, store.ErrNotMember, "not a member of the conversation"},
	SeqOutOfRange:   {wire.CodeSeqOutOfRange, store.ErrSeqOutOfRange, "seq beyond the conversation's last message"},
	Muted:           {wire.CodeForbidden, store.ErrMuted, "you are muted"},
	GroupMuted:      {wire.CodeForbidden, store.ErrMuted, "the group is muted"},
	Blocked:         {wire.CodeBlocked, store.ErrBlocked, "you are blocked by this user"},
	NotFriends:      {wire.CodeForbidden, store.ErrNotFriends, "you are not friends"},
	NoSuchMessage:   {wire.CodeNotFound, store.ErrNotFound, "no such message"},
	NotChangeable:   {wire.CodeForbidden, store.ErrForbidden, "only text and file messages can be changed"},
	NotYours:        {wire.CodeForbidden, store.ErrForbidden, "not your message"},
	RecallWindow:    {wire.CodeForbidden, store.ErrRecallLimit, "the message is older than the recall window"},
	NotOwner:        {wire.CodeForbidden, store.ErrForbidden, "only the owner may do that"},
	NotModerator:    {wire.CodeForbidden, store.ErrForbidden, "only the owner and admins may do that"},
	OwnerStays:      {wire.CodeForbidden, store.ErrForbidden, "the owner cannot be removed"},
	OwnRole:         {wire.CodeForbidden, store.ErrForbidden, "you cannot change your own role"},
	RoleByTransfer:  {wire.CodeForbidden, store.ErrForbidden, "the owner role changes hands by an ownership transfer only"},
	InviteOnly:      {wire.CodeForbidden, store.ErrForbidden, "the group is invite only"},
	AdminLimits:     {wire.CodeForbidden, store.ErrForbidden, "admins may act on plain members only"},
	MuteOwnerOrSelf: {wire.CodeForbidden, store.ErrForbidden, "cannot mute the owner or yourself"},
	TargetNotMember: {wire.CodeNotFound, store.ErrNotFound, "not a member of the group"},
	OneTarget:       {wire.CodeNotFound, store.ErrNotFound, "name exactly one member"},
	NoSuchUser:      {wire.CodeNotFound, store.ErrNotFound, "no such user"},
	GroupFull:       {wire.CodeConflict, store.ErrGroupFull, "group is full"},
	LastOwner:       {wire.CodeConflict, store.ErrLastOwner, "transfer ownership first"},
	SelfFriend:      {wire.CodeForbidden, store.ErrForbidden, "you cannot befriend yourself"},
	SelfBlock:       {wire.CodeForbidden, store.ErrForbidden, "you cannot block yourself"},
	FriendsClosed:   {wire.CodeForbidden, store.ErrForbidden, "this user does not accept friend requests"},
	LimitBelowCount: {wire.CodeConflict, store.ErrGroupFull, "the group has more members than that limit"},
	NoJoinRequest:   {wire.CodeNotFound, store.ErrNotFound, "no such join request"},
}

// Refusal is a rule's no. It is an error: errors.Is matches the store
// sentinel of its reason (store.ErrForbidden, store.ErrMuted…) and any
// Refusal with the same Reason.
type Refusal struct {
	Reason Reason
	Until  time.Time // Muted, GroupMuted: when the mute ends
}

// The refusals without details, shared so that refusing allocates nothing.
var fixed = func() (out [len(reasons)]*Refusal) {
	for i := range out {
		out[i] = &Refusal{Reason: Reason(i)}
	}
	return out
}()

// Refuse returns the shared Refusal for a reason without details.
func Refuse(r Reason) *Refusal { return fixed[r] }

// Code is the refusal's wire code.
func (r *Refusal) Code() wire.Code { return reasons[r.Reason].code }

// Error is the client-visible text.
func (r *Refusal) Error() string {
	text := reasons[r.Reason].text
	if !r.Until.IsZero() {
		return fmt.Sprintf("%s until %s", text, r.Until.UTC().Format(time.RFC3339))
	}
	return text
}

// Is makes errors.Is(err, store.ErrForbidden) and
// errors.Is(err, rules.Refuse(rules.NotOwner)) work.
func (r *Refusal) Is(target error) bool {
	if t, ok := target.(*Refusal); ok {
		return t.Reason == r.Reason
	}
	return target == reasons[r.Reason].is
}

// Err turns a rule's answer into an error, nil for a yes, so that a nil
// *Refusal never becomes a non-nil error interface.
func Err(r *Refusal) error {
	if r == nil {
		return nil
	}
	return r
}
