package store

import "time"

// Notice is a transient push to one user's online devices (never stored:
// it lives here beside the other domain types so that logic and the
// envelope encoder share it): a friend request, a join request for a group
// they run, being added to or removed from a group, a scheduled message
// refused. Type names what happened; the other fields are set as it needs
// (proto/magpie.proto's Notice lists them).
type Notice struct {
	Type        string
	At          time.Time
	ActorID     int64
	Actor       string
	GroupID     string
	GroupName   string
	ScheduledID int64
	Reason      string
	Code        uint32
	ToUser      string
	ToGroup     string
}

// The notice types.
const (
	NoticeFriendRequested  = "friend.requested"
	NoticeFriendAccepted   = "friend.accepted"
	NoticeJoinRequested    = "group.join_requested"
	NoticeGroupAdded       = "group.added"
	NoticeGroupRemoved     = "group.removed"
	NoticeScheduledRefused = "scheduled.refused"
)
