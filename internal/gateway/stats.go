package gateway

import (
	"sync/atomic"

	"github.com/magpie-im/magpie/proto/wire"
)

// Stats is a snapshot of a Gateway's counters.
type Stats struct {
	ConnsByKind  map[Kind]int64 // open now, by transport (every Kind present)
	Auths        uint64         // successful authentications
	AuthFailures uint64         // refused by Logic
	// Disconnects counts closed connections by code; 0 means the client or
	// the network ended the connection.
	Disconnects   map[wire.Code]uint64
	FramesIn      uint64
	FramesOut     uint64
	SlowConsumers uint64 // disconnected because their send queue was full
	RateLimited   uint64 // requests refused with CodeRateLimited
	AcceptWaits   uint64 // new connections held back by the accept rate
	AcceptRefused uint64 // WebSocket upgrades refused (503) by the accept rate
}

const maxStatCode = 64

type counters struct {
	conns         [numKinds]atomic.Int64
	auths         atomic.Uint64
	authFailures  atomic.Uint64
	disconnects   [maxStatCode]atomic.Uint64
	framesIn      atomic.Uint64
	framesOut     atomic.Uint64
	slowConsumers atomic.Uint64
	rateLimited   atomic.Uint64
	acceptWaits   atomic.Uint64
	acceptRefused atomic.Uint64
}

func (c *counters) connected(k Kind) { c.conns[k].Add(1) }

func (c *counters) disconnected(code wire.Code, k Kind) {
	c.conns[k].Add(-1)
	if code >= maxStatCode {
		code = wire.CodeInternal
	}
	c.disconnects[code].Add(1)
}

// Stats returns the current counters.
func (g *Gateway) Stats() Stats {
	c := &g.stats
	st := Stats{
		ConnsByKind:   make(map[Kind]int64, numKinds),
		Auths:         c.auths.Load(),
		AuthFailures:  c.authFailures.Load(),
		Disconnects:   make(map[wire.Code]uint64),
		FramesIn:      c.framesIn.Load(),
		FramesOut:     c.framesOut.Load(),
		SlowConsumers: c.slowConsumers.Load(),
		RateLimited:   c.rateLimited.Load(),
		AcceptWaits:   c.acceptWaits.Load(),
		AcceptRefused: c.acceptRefused.Load(),
	}
	for _, k := range Kinds() {
		st.ConnsByKind[k] = c.conns[k].Load()
	}
	for i := range c.disconnects {
		if n := c.disconnects[i].Load(); n > 0 {
			st.Disconnects[wire.Code(i)] = n
		}
	}
	return st
}
