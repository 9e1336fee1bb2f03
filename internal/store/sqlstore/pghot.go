package sqlstore

import (
	"slices"
	"sync"

	"github.com/magpie-im/magpie/internal/store"
)

// pgHot lets the two-round-trip append (pgpipeline.go) skip its first
// round trip: it keeps, per conversation, what the last batch this process
// wrote there read and wrote (last seq, kind, mute, the senders'
// memberships), and a batch of conversations and senders it knows is
// decided from it and sent as the write statement alone, one round trip.
//
// The cache is never trusted, only checked: the write statement
// (pgWriteBatchSQL) compares every input of the decision with the rows it
// updates, the conversation's last seq and mute, each sender's
// membership (not left, role, mute), blocks and friendships, and a client
// id already stored fails the client ids' unique index. So an entry made
// stale by anything, another node, another process or an edit by hand,
// fails the statement and nothing of it is kept; the batch then runs again
// on the two-round-trip path, which reads everything, and its
// conversations' entries are dropped until a batch of that path writes
// them again.
//
// Only a batch whose every request it lets through is decided from the
// cache: a refusal (mute, block, not a friend) would rest on state no
// statement checked.
type pgHot struct {
	mu       sync.Mutex
	convs    map[string]*hotConv
	nmembers int // in all of convs, against maxHotMembers
}

// hotConv is one conversation's entry, all of it as of st.lastSeq (every
// change of who may write appends an event, so moves it; the statement's
// checks do not rely on that).
type hotConv struct {
	st      convState
	members map[userPeer]memberState // the senders', read for the peer
}

// userPeer is a sender and the peer its membership was read for (0 in
// groups).
type userPeer struct{ user, peer int64 }

// maxHotSenders bounds one conversation's members in the cache; past it
// they start again empty. maxHotConvs and maxHotMembers (hotcache.go)
// bound the whole, as on SQLite.
const maxHotSenders = 1 << 10

// fill gives b the cached state of every conversation and sender of reqs
// and returns their conversations in id order, or false (b untouched) if
// any is missing or not a current member.
func (h *pgHot) fill(b *appendBatch, reqs []store.AppendRequest) ([]string, bool) {
	ids := make([]string, 0, 4)
	for _, r := range reqs {
		ids = append(ids, r.ConversationID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range reqs {
		e := h.convs[r.ConversationID]
		if e == nil {
			return nil, false
		}
		if ms, ok := e.members[userPeer{r.SenderID, r.PeerID}]; !ok || !ms.current {
			return nil, false
		}
	}
	for _, id := range ids {
		st := h.convs[id].st
		b.convs[id] = &st
	}
	for _, r := range reqs {
		b.members[memberKey{r.ConversationID, r.SenderID}] = h.convs[r.ConversationID].members[userPeer{r.SenderID, r.PeerID}]
	}
	return ids, true
}

// keep records what a committed batch b of reqs read and wrote: each
// conversation it wrote as of its new last seq. prev is the last seq each
// had when the batch's statement raised it, so an entry still at prev
// keeps its other senders: nothing but this batch happened since.
func (h *pgHot) keep(b *appendBatch, reqs []store.AppendRequest, prev map[string]int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.convs == nil || len(h.convs) >= maxHotConvs || h.nmembers >= maxHotMembers {
		h.convs, h.nmembers = make(map[string]*hotConv), 0
	}
	for id, st := range b.convs {
		if !st.dirty {
			continue
		}
		e := h.convs[id]
		if e == nil || e.st.lastSeq != prev[id] || len(e.members) >= maxHotSenders {
			if e != nil {
				h.nmembers -= len(e.members)
			}
			e = &hotConv{members: make(map[userPeer]memberState)}
			h.convs[id] = e
		}
		e.st = *st
		e.st.dirty = false
	}
	read := make(map[memberKey]bool, len(reqs))
	for _, r := range reqs {
		mk := memberKey{r.ConversationID, r.SenderID}
		if st := b.convs[mk.conv]; st == nil || !st.dirty || read[mk] {
			continue
		}
		// b.members[mk] was read (or filled) for the first request of mk.
		read[mk] = true
		if ms, ok := b.members[mk]; ok {
			m := h.convs[mk.conv].members
			if _, had := m[userPeer{r.SenderID, r.PeerID}]; !had {
				h.nmembers++
			}
			m[userPeer{r.SenderID, r.PeerID}] = ms
		}
	}
}

// drop forgets the conversations ids.
func (h *pgHot) drop(ids []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if e := h.convs[id]; e != nil {
			h.nmembers -= len(e.members)
			delete(h.convs, id)
		}
	}
}
