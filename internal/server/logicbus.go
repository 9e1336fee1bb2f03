package server

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/magpie-im/magpie/internal/cluster"
)

// logicBus serves the logic subjects while the database answers. A node
// cut off from its database leaves the queue group, so gateways' requests
// go to a node that can commit them (or get "no responders" at once when
// none can, which the SDK retries), instead of waiting on this one. The
// gateway of a node running both roles follows the same rule: it calls
// this node's logic directly only while the bus serves (direct.go).
type logicBus struct {
	nc  *nats.Conn
	h   cluster.LogicHandler
	log *slog.Logger

	ctx    context.Context // the authentications' lifetime; ends at stop
	cancel context.CancelFunc
	auths  cluster.Group // authentications running (cluster.ServeLogic)

	mu     sync.Mutex
	subs   []*nats.Subscription // nil while out of the queue
	closed bool
	// up mirrors subs != nil: this node's gateway (serve) calls logic
	// directly while it is set, over the bus while not (direct.go).
	up atomic.Bool
}

// serving reports whether this node serves logic requests now.
func (b *logicBus) serving() bool { return b.up.Load() }

func newLogicBus(nc *nats.Conn, log *slog.Logger) *logicBus {
	ctx, cancel := context.WithCancel(context.Background())
	return &logicBus{nc: nc, log: log, ctx: ctx, cancel: cancel}
}

func (b *logicBus) serve() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.subs != nil {
		return nil
	}
	subs, err := cluster.ServeLogic(b.ctx, b.nc, b.h, &b.auths)
	if err != nil {
		return err
	}
	b.subs = subs
	b.up.Store(true)
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
	b.up.Store(false)
	for _, s := range b.subs {
		_ = s.Unsubscribe()
	}
	b.subs = nil
}

// stop leaves the queue for good: requests already received are still
// answered (Drain), then the authentications they started are waited
// for, all bounded by ctx.
func (b *logicBus) stop(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.up.Store(false)
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()
	defer b.cancel()
	return errors.Join(drainSubs(ctx, subs...), b.auths.Stop(ctx))
}
