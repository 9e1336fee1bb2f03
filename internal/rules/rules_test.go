package rules

import (
	"errors"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

var t0 = time.Unix(1_700_000_000, 0).UTC()

func wantReason(t *testing.T, name string, got *Refusal, want Reason) {
	t.Helper()
	switch {
	case want == 0 && got != nil:
		t.Errorf("%s: refused (%v), want allowed", name, got)
	case want != 0 && got == nil:
		t.Errorf("%s: allowed, want refusal %d", name, want)
	case want != 0 && got.Reason != want:
		t.Errorf("%s: refusal %d (%v), want %d", name, got.Reason, got, want)
	}
}

func TestMaySend(t *testing.T) {
	later := t0.Add(time.Minute)
	for _, tc := range []struct {
		name string
		s    Send
		want Reason
	}{
		{"plain group message", Send{Group: true, At: t0}, 0},
		{"muted member", Send{Group: true, Sender: Sender{Role: store.RoleMember, MutedUntil: later}, At: t0}, Muted},
		{"mute over", Send{Group: true, Sender: Sender{MutedUntil: t0}, At: t0}, 0},
		{"muted member may recall", Send{Group: true, Kind: store.KindRecall, Sender: Sender{MutedUntil: later}, At: t0}, 0},
		{"group muted, member", Send{Group: true, Sender: Sender{Role: store.RoleMember}, GroupMutedUntil: later, At: t0}, GroupMuted},
		{"group muted, admin", Send{Group: true, Sender: Sender{Role: store.RoleAdmin}, GroupMutedUntil: later, At: t0}, 0},
		{"group muted, owner", Send{Group: true, Sender: Sender{Role: store.RoleOwner}, GroupMutedUntil: later, At: t0}, 0},
		{"admin muted personally", Send{Group: true, Sender: Sender{Role: store.RoleAdmin, MutedUntil: later}, At: t0}, Muted},
		{"private", Send{Private: true, At: t0}, 0},
		{"private, blocked", Send{Private: true, Sender: Sender{Blocked: true}, At: t0}, Blocked},
		{"private, friendship required, strangers", Send{Private: true, RequireFriend: true, At: t0}, NotFriends},
		{"private, friendship required, friends", Send{Private: true, RequireFriend: true, Sender: Sender{Friends: true}, At: t0}, 0},
		{"blocked beats not friends", Send{Private: true, RequireFriend: true, Sender: Sender{Blocked: true}, At: t0}, Blocked},
		{"note to self ignores friendship", Send{RequireFriend: true, At: t0}, 0},
	} {
		wantReason(t, tc.name, MaySend(tc.s), tc.want)
	}
	r := MaySend(Send{Group: true, Sender: Sender{MutedUntil: t0.Add(time.Hour)}, At: t0})
	if !r.Until.Equal(t0.Add(time.Hour)) || r.Error() != "you are muted until 2023-11-14T23:13:20Z" {
		t.Errorf("muted refusal: until %v, text %q", r.Until, r.Error())
	}
}

func TestMayChange(t *testing.T) {
	orig := Original{Found: true, Seq: 5, SenderID: 1, SentAt: t0, Kind: store.KindText}
	with := func(f func(*Change)) Change {
		c := Change{Kind: store.KindEdit, SenderID: 1, Window: 2 * time.Minute, At: t0.Add(time.Minute), Original: orig}
		f(&c)
		return c
	}
	for _, tc := range []struct {
		name string
		c    Change
		want Reason
	}{
		{"own edit in window", with(func(*Change) {}), 0},
		{"own edit at the window's end", with(func(c *Change) { c.At = t0.Add(2 * time.Minute) }), 0},
		{"own edit after the window", with(func(c *Change) { c.At = t0.Add(2*time.Minute + time.Millisecond) }), RecallWindow},
		{"window 0 means never", with(func(c *Change) { c.Window = 0 }), RecallWindow},
		{"someone else's", with(func(c *Change) { c.SenderID = 2 }), NotYours},
		{"admin edits someone else's", with(func(c *Change) { c.SenderID = 2; c.Role = store.RoleAdmin }), NotYours},
		{"admin recalls someone else's, late", with(func(c *Change) {
			c.Kind, c.SenderID, c.Role, c.At = store.KindRecall, 2, store.RoleAdmin, t0.Add(time.Hour)
		}), 0},
		{"owner recalls", with(func(c *Change) { c.Kind, c.SenderID, c.Role = store.KindRecall, 2, store.RoleOwner }), 0},
		{"member recalls someone else's", with(func(c *Change) { c.Kind, c.SenderID, c.Role = store.KindRecall, 2, store.RoleMember }), NotYours},
		{"no such message", with(func(c *Change) { c.Original.Found = false }), NoSuchMessage},
		{"before the sender joined", with(func(c *Change) { c.JoinedSeq = 5 }), NoSuchMessage},
		{"already recalled", with(func(c *Change) { c.Original.Recalled = true }), NoSuchMessage},
		{"an edit of an edit", with(func(c *Change) { c.Original.Kind = store.KindEdit }), NotChangeable},
		{"an event", with(func(c *Change) { c.Original.Kind = store.KindEvent }), NotChangeable},
		{"a file", with(func(c *Change) { c.Original.Kind = store.KindFile }), 0},
	} {
		wantReason(t, tc.name, MayChange(tc.c), tc.want)
	}
}

func TestMoveCursor(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Cursors
		kind store.CursorKind
		seq  uint64
		want Cursors
		r    Reason
	}{
		{"delivered forward", Cursors{1, 1, 9}, store.Delivered, 5, Cursors{5, 1, 9}, 0},
		{"delivered never backwards", Cursors{7, 1, 9}, store.Delivered, 5, Cursors{7, 1, 9}, 0},
		{"read implies delivered", Cursors{1, 1, 9}, store.Read, 6, Cursors{6, 6, 9}, 0},
		{"read behind delivered", Cursors{8, 2, 9}, store.Read, 4, Cursors{8, 4, 9}, 0},
		{"read never backwards", Cursors{8, 6, 9}, store.Read, 4, Cursors{8, 6, 9}, 0},
		{"to the last seq", Cursors{0, 0, 9}, store.Read, 9, Cursors{9, 9, 9}, 0},
		{"beyond the last seq", Cursors{0, 0, 9}, store.Delivered, 10, Cursors{0, 0, 9}, SeqOutOfRange},
	} {
		got, r := MoveCursor(tc.in, tc.kind, tc.seq)
		wantReason(t, tc.name, r, tc.r)
		if got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
		if got.Read > got.Delivered || got.Delivered > got.Last {
			t.Errorf("%s: invariant read ≤ delivered ≤ last broken: %+v", tc.name, got)
		}
	}
}

// TestGroupTable walks the table in groups.go's comment.
func TestGroupTable(t *testing.T) {
	owner := Member{Current: true, Role: store.RoleOwner}
	admin := Member{Current: true, Role: store.RoleAdmin}
	member := Member{Current: true, Role: store.RoleMember}
	for _, tc := range []struct {
		name string
		got  *Refusal
		want Reason
	}{
		{"owner adds, invite", MayAdd(owner, store.JoinInvite), 0},
		{"admin adds, invite", MayAdd(admin, store.JoinInvite), 0},
		{"member adds, invite", MayAdd(member, store.JoinInvite), NotModerator},
		{"member adds, open", MayAdd(member, store.JoinOpen), 0},
		{"join open", MayJoin(store.JoinOpen), 0},
		{"join invite", MayJoin(store.JoinInvite), InviteOnly},
		{"owner leaves", MayLeave(owner), LastOwner},
		{"admin leaves", MayLeave(admin), 0},
		{"member leaves", MayLeave(member), 0},
		{"owner removes admin", MayRemove(owner, admin), 0},
		{"owner removes member", MayRemove(owner, member), 0},
		{"admin removes member", MayRemove(admin, member), 0},
		{"admin removes admin", MayRemove(admin, admin), AdminLimits},
		{"admin removes owner", MayRemove(admin, owner), OwnerStays},
		{"member removes member", MayRemove(member, member), NotModerator},
		{"owner sets roles", MaySetRoleAtAll(owner, false), 0},
		{"admin sets roles", MaySetRoleAtAll(admin, false), NotOwner},
		{"member promotes self", MaySetRoleAtAll(member, true), OwnRole},
		{"owner demotes self", MaySetRole(true, store.RoleMember), OwnRole},
		{"owner makes admin", MaySetRole(false, store.RoleAdmin), 0},
		{"owner makes owner by set-role", MaySetRole(false, store.RoleOwner), RoleByTransfer},
		{"owner transfers", OnlyOwner(owner), 0},
		{"admin transfers", OnlyOwner(admin), NotOwner},
		{"admin updates", OnlyModerators(admin), 0},
		{"member updates", OnlyModerators(member), NotModerator},
		{"owner mutes admin", MayMute(owner, admin, false), 0},
		{"admin mutes member", MayMute(admin, member, false), 0},
		{"admin mutes admin", MayMute(admin, admin, false), AdminLimits},
		{"admin mutes owner", MayMute(admin, owner, false), MuteOwnerOrSelf},
		{"owner mutes self", MayMute(owner, owner, true), MuteOwnerOrSelf},
		{"target gone", CurrentTarget(Member{}), TargetNotMember},
		{"fits", Fits(4, 1, 5), 0},
		{"full", Fits(5, 1, 5), GroupFull},
		{"no limit", Fits(5000, 1, 0), 0},
	} {
		wantReason(t, tc.name, tc.got, tc.want)
	}
	if _, r := Target([]int64{1, 2}); r == nil || r.Reason != OneTarget {
		t.Errorf("two targets: %v", r)
	}
}

func TestFriendRequest(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		blocked, friends, asked bool
		policy                  store.FriendPolicy
		want                    FriendOutcome
		r                       Reason
	}{
		{"new", false, false, false, store.FriendApprove, StoreRequest, 0},
		{"mutual", false, false, true, store.FriendApprove, AcceptMutual, 0},
		{"already", false, true, false, store.FriendApprove, AlreadyFriends, 0},
		{"blocked", true, false, true, store.FriendApprove, 0, Blocked},
		{"anyone", false, false, false, store.FriendAnyone, AddDirectly, 0},
		{"anyone but blocked", true, false, false, store.FriendAnyone, 0, Blocked},
		{"nobody", false, false, false, store.FriendNobody, 0, FriendsClosed},
		{"nobody who asked", false, false, true, store.FriendNobody, AcceptMutual, 0},
		{"nobody, already friends", false, true, false, store.FriendNobody, AlreadyFriends, 0},
	} {
		got, r := FriendRequest(tc.blocked, tc.friends, tc.asked, tc.policy)
		wantReason(t, tc.name, r, tc.r)
		if r == nil && got != tc.want {
			t.Errorf("%s: outcome %d, want %d", tc.name, got, tc.want)
		}
	}
	wantReason(t, "befriend self", MayBefriend(3, 3), SelfFriend)
	wantReason(t, "block self", MayBlock(3, 3), SelfBlock)
}

// TestEveryReasonIsComplete keeps the reason table whole: each reason has
// a code, a sentinel and a text, and errors.Is matches both ways.
func TestEveryReasonIsComplete(t *testing.T) {
	for r := Reason(1); int(r) < len(reasons); r++ {
		info := reasons[r]
		ref := Refuse(r)
		if info.code == 0 || info.code.HTTPStatus() == 500 || info.is == nil || info.text == "" {
			t.Errorf("reason %d: incomplete %+v", r, info)
		}
		if !errors.Is(ref, info.is) || !errors.Is(ref, &Refusal{Reason: r}) || errors.Is(ref, &Refusal{Reason: r%Reason(len(reasons)-1) + 1}) {
			t.Errorf("reason %d: errors.Is mismatch", r)
		}
		if ref.Code() != info.code || ref.Code() == wire.CodeInternal {
			t.Errorf("reason %d: code %v", r, ref.Code())
		}
	}
	if Err(nil) != nil {
		t.Error("Err(nil) is a non-nil error")
	}
}
