package gateway

import (
	"sync"
	"time"

	"github.com/magpie-im/magpie/proto/wire"
)

// endedSessions remembers the sessions logic ended (logout, deletion,
// password change) for one auth timeout. A connection whose auth read the
// session just before it ended gets its AuthOK after logic looked for the
// session's connections, and presence may not show it yet to the node that
// ended it: without this it would live on with a dead session. The auth
// path registers the connection in the user index and then looks here;
// Deliver records here and then looks in the user index; so one of the two
// always sees the other (both steps are under locks). An auth reply later
// than AuthTimeout is never used, so entries need not live longer.
type endedSessions struct {
	mu   sync.Mutex // a leaf
	ttl  time.Duration
	byID map[string]endedSession
}

type endedSession struct {
	at    time.Time
	code  wire.Code
	frame []byte // the Kick, protobuf-encoded
}

func (e *endedSessions) add(id string, code wire.Code, frame []byte, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byID == nil {
		e.byID = make(map[string]endedSession)
	}
	// Sessions end rarely: pruning on every add keeps the map at the
	// sessions ended within one auth timeout.
	for id, x := range e.byID {
		if now.Sub(x.at) > e.ttl {
			delete(e.byID, id)
		}
	}
	e.byID[id] = endedSession{at: now, code: code, frame: frame}
}

func (e *endedSessions) get(id string, now time.Time) (endedSession, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x, ok := e.byID[id]
	if ok && now.Sub(x.at) > e.ttl {
		return endedSession{}, false
	}
	return x, ok
}
