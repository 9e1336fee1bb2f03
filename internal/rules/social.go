package rules

import "github.com/magpie-im/magpie/internal/store"

// MayBefriend refuses a friend request to oneself.
func MayBefriend(from, to int64) *Refusal {
	if from == to {
		return Refuse(SelfFriend)
	}
	return nil
}

// MayBlock refuses blocking oneself.
func MayBlock(user, other int64) *Refusal {
	if user == other {
		return Refuse(SelfBlock)
	}
	return nil
}

// FriendOutcome is what a friend request does.
type FriendOutcome uint8

const (
	AlreadyFriends FriendOutcome = iota // nothing to do
	AcceptMutual                        // the other asked first: they are friends now
	StoreRequest                        // wait for the other's answer
	AddDirectly                         // the other lets anyone add them: friends now
)

// FriendRequest decides a request from a user to another, given whether
// either blocked the other, whether they are friends already, whether
// the other asked first, and the other's add policy. A request answers
// one the other made, whatever their policy: they asked.
func FriendRequest(blocked, friends, otherAsked bool, policy store.FriendPolicy) (FriendOutcome, *Refusal) {
	switch {
	case blocked:
		return 0, Refuse(Blocked)
	case friends:
		return AlreadyFriends, nil
	case otherAsked:
		return AcceptMutual, nil
	case policy == store.FriendNobody:
		return 0, Refuse(FriendsClosed)
	case policy == store.FriendAnyone:
		return AddDirectly, nil
	}
	return StoreRequest, nil
}
