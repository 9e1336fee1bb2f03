package gateway

import (
	"time"

	"golang.org/x/time/rate"
)

// The accept rate (Config.AcceptRate) bounds how fast a gateway takes new
// connections, on all its listeners together, so a reconnect storm (every
// client of a dead gateway at once) reaches the logic nodes and the
// database as a stream, not a wall. Over the rate, a TCP or MQTT listener
// holds the connection it accepted until its turn and the ones behind it
// wait in the kernel's listen backlog (past it, their SYNs are dropped and
// the clients retry); a WebSocket upgrade waits up to AuthTimeout for its
// turn, then gets 503 with Retry-After, which the SDK backs off on.

func newAcceptLimiter(perSecond float64) *rate.Limiter {
	if perSecond <= 0 {
		return nil
	}
	// A tenth of a second's worth at once: smooth, but no stall for a
	// handful of connections.
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(perSecond/10)))
}

// waitAccept blocks until the accept rate allows one more connection. It
// reports false if the gateway stopped first, or if the wait would be
// longer than limit (0: no limit).
func (g *Gateway) waitAccept(limit time.Duration) bool {
	if g.accepts == nil {
		return true
	}
	r := g.accepts.Reserve()
	d := r.Delay()
	if d == 0 {
		return true
	}
	if limit > 0 && d > limit {
		r.Cancel()
		return false
	}
	g.stats.acceptWaits.Add(1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-g.stopped:
		r.Cancel()
		return false
	}
}
