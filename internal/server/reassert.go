package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/magpie-im/magpie/internal/cluster"
)

// reasserter writes a gateway's presence entries again after logic nodes
// may have deleted them: after a NATS reconnect, a long registry silence,
// or a "buried" notice. Triggers come from NATS goroutines and must not
// block, so the writing runs on one goroutine of its own; triggers that
// come while it runs make it run once more, instead of piling up. The
// node's stop step ends it (stop).
type reasserter struct {
	log *slog.Logger

	mu      sync.Mutex // guards everything below
	pw      *cluster.PresenceWriter
	ctx     context.Context // ends at stop
	cancel  context.CancelFunc
	running bool // a goroutine is writing
	again   bool // triggered while running
	stopped bool
	wg      sync.WaitGroup
}

func newReasserter(log *slog.Logger) *reasserter {
	ctx, cancel := context.WithCancel(context.Background())
	return &reasserter{log: log, ctx: ctx, cancel: cancel}
}

// use sets the writer whose entries are written; until then triggers do
// nothing (there is nothing to write).
func (r *reasserter) use(pw *cluster.PresenceWriter) {
	r.mu.Lock()
	r.pw = pw
	r.mu.Unlock()
}

// trigger asks for the entries to be written again. It returns at once.
func (r *reasserter) trigger() {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.pw == nil || r.stopped:
	case r.running:
		r.again = true
	default:
		r.running = true
		r.wg.Add(1) // under mu, so never after stop's Wait began
		go r.run(r.pw)
	}
}

func (r *reasserter) run(pw *cluster.PresenceWriter) {
	defer r.wg.Done()
	for {
		r.reassert(pw)
		r.mu.Lock()
		if !r.again || r.stopped {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.again = false
		r.mu.Unlock()
	}
}

// reassert retries for a while: JetStream may be electing a bucket leader
// right now (a NATS server just died).
func (r *reasserter) reassert(pw *cluster.PresenceWriter) {
	ctx, cancel := context.WithTimeout(r.ctx, reassertFor)
	defer cancel()
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := pw.Reassert(ctx)
		if err == nil {
			r.log.Info("presence reasserted", "conns", pw.Len())
			return
		}
		if ctx.Err() != nil {
			if r.ctx.Err() == nil {
				r.log.Warn("presence reassert gave up", "after", reassertFor, "err", err)
			}
			return
		}
		r.log.Warn("presence reassert failed; retrying", "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// reassertFor bounds one round of retries.
const reassertFor = 2 * time.Minute

// stop ends a running reassert and waits for it, bounded by ctx; later
// triggers do nothing.
func (r *reasserter) stop(ctx context.Context) error {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	return stopWaitGroup(ctx, &r.wg)
}
