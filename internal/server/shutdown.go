package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Lifecycle: Start registers, right after it starts each part of the node,
// the step that stops it (onStop). Shutdown drains the clients first, then
// runs the steps in reverse order, so every part stops before what it
// depends on: listeners → HTTP → the gateway and its subscriptions → the
// logic bus → the commit loops and extensions → the watchers → the store →
// NATS. A failed Start runs the steps registered so far. Steps are added
// only by Start, before the node is handed out, so they need no lock.

// stopStep is one part's stop: it returns once the part has stopped, or
// ctx's error when ctx ends first (later steps still run, so backends are
// closed even after a hard stop).
type stopStep struct {
	name string
	stop func(ctx context.Context) error
}

func (n *Node) onStop(name string, stop func(ctx context.Context) error) {
	n.steps = append(n.steps, stopStep{name, stop})
}

// goUntilStop runs fn on a goroutine until the node stops: its stop step
// cancels fn's ctx and waits for fn to return.
func (n *Node) goUntilStop(name string, fn func(ctx context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	n.onStop(name, func(sctx context.Context) error {
		cancel()
		return waitDone(sctx, done)
	})
}

// goServe runs serve (a Serve loop) on a goroutine; its stop step calls
// stop (which makes serve return) and waits for serve to return.
func (n *Node) goServe(name string, serve func(), stop func(ctx context.Context) error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve()
	}()
	n.onStop(name, func(ctx context.Context) error {
		err := stop(ctx)
		return errors.Join(err, waitDone(ctx, done))
	})
}

func waitDone(ctx context.Context, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops the node: it drains the clients, then runs the stop steps
// in reverse start order. Safe to call twice (the second call returns the
// first one's result).
//
// Clients get --drain-timeout (counted from the call) to leave; those
// still connected then are closed (they were sent Kick{draining,
// reconnect}), and the rest of the shutdown goes on at once. ctx is the
// hard stop for everything, the drain included, except committing what is
// queued, which gets its own budget (see startLogic).
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() {
		errs := []error{n.drain(ctx)}
		for i := len(n.steps) - 1; i >= 0; i-- {
			s := n.steps[i]
			if err := s.stop(ctx); err != nil {
				errs = append(errs, fmt.Errorf("shutdown: %s: %w", s.name, err))
			}
		}
		n.stopErr = errors.Join(errs...)
	})
	return n.stopErr
}

// drain is Shutdown's first step: logins stop routing to this gateway,
// then its clients are told to reconnect elsewhere and given
// --drain-timeout to go.
func (n *Node) drain(ctx context.Context) error {
	if n.gw == nil {
		return nil
	}
	drainCtx, cancelDrain := context.WithCancelCause(ctx)
	defer cancelDrain(nil)
	after := n.drainTimer
	if after == nil {
		after = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	defer after(max(n.cfg.DrainTimeout, 0), func() { cancelDrain(errDrainTimeout) })()
	if n.registrar != nil {
		// Logins stop routing here before the clients are told to go, so
		// their new logins land elsewhere.
		n.draining.Store(true)
		// Published even with a zero drain timeout: logic nodes must stop
		// routing here either way.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := n.registrar.Put(pctx); err != nil {
			n.log.Warn("registry: could not publish draining", "err", err)
		} else {
			// Logic nodes see the entry through a watch, a few
			// milliseconds later; give them that before clients are told
			// to log in again.
			t := time.NewTimer(drainNoticeGrace)
			select {
			case <-t.C:
			case <-drainCtx.Done():
			}
			t.Stop()
		}
		cancel()
	}
	err := n.gw.Drain(drainCtx)
	switch {
	case err == nil:
		return nil
	case context.Cause(drainCtx) == errDrainTimeout:
		n.log.Info("drain timeout: closed the connections still open", "drain_timeout", n.cfg.DrainTimeout.String())
		return nil
	case ctx.Err() != nil:
		return nil // the hard stop: the steps below report it
	}
	return err
}

// errDrainTimeout ends the drain when --drain-timeout has passed.
var errDrainTimeout = errors.New("drain timeout")

// drainSubs drains subscriptions (requests already received are still
// handled, so gateways get answers instead of timeouts) and waits until
// NATS has closed them all.
func drainSubs(ctx context.Context, subs ...*nats.Subscription) error {
	ctx, cancel := context.WithTimeout(ctx, drainSubsWait)
	defer cancel()
	var errs []error
	closed := make([]<-chan nats.SubStatus, 0, len(subs))
	for _, s := range subs {
		ch := s.StatusChanged(nats.SubscriptionClosed)
		if err := s.Drain(); err != nil && !errors.Is(err, nats.ErrBadSubscription) && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
		closed = append(closed, ch)
	}
	for _, ch := range closed {
		select {
		case <-ch: // SubscriptionClosed, or the channel closed with it
		case <-ctx.Done():
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	return errors.Join(errs...)
}

// closeNATS drains the connection (what is published gets flushed) and
// closes it.
func closeNATS(ctx context.Context, nc *nats.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, drainSubsWait)
	defer cancel()
	closed := nc.StatusChanged(nats.CLOSED)
	defer nc.RemoveStatusListener(closed)
	if !nc.IsClosed() && nc.Drain() == nil {
		select {
		case <-closed:
		case <-ctx.Done():
		}
	}
	nc.Close()
	return nil
}

// drainSubsWait bounds the wait for a drain: what a subscription or the
// connection still holds is a few round trips to the NATS server away.
const drainSubsWait = 2 * time.Second

// stopWaitGroup waits for wg, bounded by ctx.
func stopWaitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	return stopWaitGroupFunc(ctx, wg.Wait)
}

// stopWaitGroupFunc runs wait (a Wait method), bounded by ctx.
func stopWaitGroupFunc(ctx context.Context, wait func()) error {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	return waitDone(ctx, done)
}
