package server

import (
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/magpie-im/magpie/internal/cluster"
)

// logicBus serves the logic subjects while the database answers. A node
// cut off from its database leaves the queue group, so gateways' requests
// go to a node that can commit them (or get "no responders" at once when
// none can, which the SDK retries), instead of waiting on this one.
type logicBus struct {
	nc  *nats.Conn
	h   cluster.LogicHandler
	log *slog.Logger

	mu     sync.Mutex
	subs   []*nats.Subscription // nil while out of the queue
	closed bool
}

func (b *logicBus) serve() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.subs != nil {
		return nil
	}
	subs, err := cluster.ServeLogic(b.nc, b.h)
	if err != nil {
		return err
	}
	b.subs = subs
	return nil
}

// setHealthy is logic.Config.OnStoreHealth.
func (b *logicBus) setHealthy(ok bool) {
	if ok {
		if err := b.serve(); err != nil {
			b.log.Error("rejoin the logic queue", "err", err)
		}
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Unsubscribe, not Drain: requests still queued here would only wait
	// for the database; the gateway times them out and the SDK resends.
	for _, s := range b.subs {
		_ = s.Unsubscribe()
	}
	b.subs = nil
}

// close stops resubscribing and hands over the live subscriptions, for
// Shutdown to drain.
func (b *logicBus) close() []*nats.Subscription {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	subs := b.subs
	b.subs = nil
	return subs
}
