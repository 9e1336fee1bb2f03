package client

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// dispatcher runs callbacks one at a time, in the order they were pushed,
// on its own goroutine, so no SDK lock is held while application code runs.
// The queue is unbounded: the SDK never blocks on a slow callback.
type dispatcher struct {
	mu       sync.Mutex // a leaf lock
	q        []func()
	wake     chan struct{}
	done     chan struct{}
	started  bool
	stopping bool
}

func newDispatcher() *dispatcher {
	return &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (d *dispatcher) start() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started {
		d.started = true
		go d.loop()
	}
}

// push queues f; it reports false if the dispatcher is stopping and f
// will not run.
func (d *dispatcher) push(f func()) bool {
	d.mu.Lock()
	ok := !d.stopping
	if ok {
		d.q = append(d.q, f)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return ok
}

// flush waits until the callbacks queued before it have returned.
func (d *dispatcher) flush(ctx context.Context) error {
	d.mu.Lock()
	started := d.started
	d.mu.Unlock()
	if !started {
		return nil // nothing was ever queued to run
	}
	ran := make(chan struct{})
	wait := d.done // a stopping dispatcher runs what was queued, then exits
	if d.push(func() { close(ran) }) {
		wait = ran
	}
	select {
	case <-wait:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop lets the loop exit once the queue is empty. It does not wait, so it
// may be called from a callback.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopping = true
	if !d.started {
		close(d.done)
		d.started = true
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) loop() {
	defer close(d.done)
	for {
		d.mu.Lock()
		q, stopping := d.q, d.stopping
		d.q = nil
		d.mu.Unlock()
		for _, f := range q {
			f()
		}
		if len(q) == 0 {
			if stopping {
				return
			}
			<-d.wake
		}
	}
}

// backoff gives jittered exponential delays: attempt n waits a random
// duration in [d/2, d] where d = min·2ⁿ capped at max ("equal jitter"), so
// clients that lost the same server do not come back in lockstep.
type backoff struct {
	min, max time.Duration
	custom   Backoff // Options.Backoff
}

// Backoff gives the delay before attempt n (from 0) of a reconnect or a
// retried call (Options.Backoff).
type Backoff func(attempt int) time.Duration

// JitteredBackoff is the default Backoff: attempt n waits a random
// duration in [d/2, d] where d = min·2ⁿ capped at max.
func JitteredBackoff(min, max time.Duration) Backoff {
	return backoff{min: min, max: max}.delay
}

func (b backoff) delay(attempt int) time.Duration {
	if b.custom != nil {
		return max(b.custom(attempt), 0)
	}
	d := b.max
	if attempt < 32 {
		if x := b.min << attempt; x > 0 && x < b.max {
			d = x
		}
	}
	return d/2 + rand.N(d/2+1)
}
