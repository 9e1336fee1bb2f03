package gateway

import "sync"

const numShards = 64 // a power of two

// shard holds a slice of the connection and user indexes. Connections are
// sharded by connection id, users by user id, so one session usually lives
// in two different shards; a function never holds two shard locks at once.
type shard struct {
	mu    sync.RWMutex
	conns map[uint64]*session  // every live session, authenticated or not
	users map[int64][]*session // authenticated sessions by user id
}

type shards [numShards]shard

func (sh *shards) init() {
	for i := range sh {
		sh[i].conns = make(map[uint64]*session)
		sh[i].users = make(map[int64][]*session)
	}
}

func (sh *shards) forConn(id uint64) *shard { return &sh[id&(numShards-1)] }
func (sh *shards) forUser(id int64) *shard  { return &sh[uint64(id)&(numShards-1)] }

func (sh *shards) addConn(s *session) {
	x := sh.forConn(s.id)
	x.mu.Lock()
	x.conns[s.id] = s
	x.mu.Unlock()
}

func (sh *shards) removeConn(s *session) {
	x := sh.forConn(s.id)
	x.mu.Lock()
	delete(x.conns, s.id)
	x.mu.Unlock()
}

func (sh *shards) conn(id uint64) *session {
	x := sh.forConn(id)
	x.mu.RLock()
	s := x.conns[id]
	x.mu.RUnlock()
	return s
}

func (sh *shards) addUser(uid int64, s *session) {
	x := sh.forUser(uid)
	x.mu.Lock()
	x.users[uid] = append(x.users[uid], s)
	x.mu.Unlock()
}

func (sh *shards) removeUser(uid int64, s *session) {
	x := sh.forUser(uid)
	x.mu.Lock()
	list := x.users[uid]
	for i, o := range list {
		if o == s {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
			break
		}
	}
	if len(list) == 0 {
		delete(x.users, uid)
	} else {
		x.users[uid] = list
	}
	x.mu.Unlock()
}

// userConns returns the connection ids of one user's authenticated sessions.
func (sh *shards) userConns(uid int64) []uint64 {
	x := sh.forUser(uid)
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]uint64, 0, len(x.users[uid]))
	for _, s := range x.users[uid] {
		out = append(out, s.id)
	}
	return out
}

// userSessions returns one user's authenticated sessions.
func (sh *shards) userSessions(uid int64) []*session {
	x := sh.forUser(uid)
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]*session(nil), x.users[uid]...)
}

// each calls f for every session, holding one shard's read lock at a time.
// f must not take a shard lock (session.mu is fine: see the lock order).
func (sh *shards) each(f func(*session)) {
	for i := range sh {
		x := &sh[i]
		x.mu.RLock()
		for _, s := range x.conns {
			f(s)
		}
		x.mu.RUnlock()
	}
}

func (sh *shards) count() int {
	n := 0
	for i := range sh {
		x := &sh[i]
		x.mu.RLock()
		n += len(x.conns)
		x.mu.RUnlock()
	}
	return n
}
