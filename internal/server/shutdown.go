package server

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// waitUntil polls cond until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) {
	for deadline := time.Now().Add(d); !cond() && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}

// Shutdown stops in order: drain clients, stop accepting HTTP, commit what
// is queued, leave the bus, close the store and NATS. Safe to call twice.
//
// Clients get --drain-timeout (counted from the call) to leave; those
// still connected then are closed (they were sent Kick{draining,
// reconnect}), and the rest of the shutdown goes on at once. ctx is the
// hard stop for everything, the drain included.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() {
		var errs []error
		drainCtx, cancelDrain := context.WithTimeout(ctx, max(n.cfg.DrainTimeout, 0))
		if n.gw != nil && n.registrar != nil {
			// Logins stop routing here before the clients are told to
			// go, so their new logins land elsewhere.
			n.draining.Store(true)
			// Published even with a zero drain timeout: logic nodes must
			// stop routing here either way.
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := n.registrar.Put(pctx); err != nil {
				n.log.Warn("registry: could not publish draining", "err", err)
			} else {
				// Logic nodes see the entry through a watch, a few
				// milliseconds later; give them that before clients
				// are told to log in again.
				select {
				case <-time.After(drainNoticeGrace):
				case <-drainCtx.Done():
				}
			}
			cancel()
		}
		if n.gw != nil {
			err := n.gw.Drain(drainCtx)
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				n.log.Info("drain timeout: closed the connections still open", "drain_timeout", n.cfg.DrainTimeout.String())
			} else if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				errs = append(errs, err)
			}
		}
		cancelDrain()
		if n.http != nil {
			if err := n.http.Shutdown(ctx); err != nil {
				_ = n.http.Close()
			}
		}
		if n.gw != nil {
			errs = append(errs, n.gw.Shutdown(ctx))
		}
		if n.tcpL != nil {
			_ = n.tcpL.Close()
		}
		if n.metrics != nil {
			_ = n.metrics.Close()
		}
		if n.httpL != nil {
			_ = n.httpL.Close()
		}
		// Requests already received are still handled (Drain, not
		// Unsubscribe), so gateways get answers instead of timeouts.
		subs := n.subs
		if n.bus != nil {
			subs = append(subs, n.bus.close()...)
		}
		for _, s := range subs {
			_ = s.Drain()
		}
		waitUntil(2*time.Second, func() bool {
			for _, s := range subs {
				if s.IsValid() {
					return false
				}
			}
			return true
		})
		// Committing what is queued gets its own budget: the clients'
		// drain above may have used up ctx.
		commitCtx, cancelCommit := context.WithTimeout(context.Background(), 10*time.Second)
		if n.svc != nil {
			errs = append(errs, n.svc.Shutdown(commitCtx))
		}
		errs = append(errs, n.ext.shutdown(commitCtx)) // after the last commit's events
		cancelCommit()
		n.cancel()
		if n.lc != nil {
			n.lc.Close()
		}
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("shutdown: goroutines still running: %w", ctx.Err()))
		}
		if n.nc != nil {
			if n.nc.Drain() == nil {
				waitUntil(2*time.Second, n.nc.IsClosed) // flush what is published
			}
			n.nc.Close()
		}
		if n.st != nil {
			errs = append(errs, n.st.Close())
		}
		if n.ns != nil {
			n.ns.Shutdown()
			n.ns.WaitForShutdown()
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}
