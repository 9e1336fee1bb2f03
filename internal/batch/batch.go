// Package batch is the group-commit loop, written once: items queue while a
// commit runs, the next commit takes up to Max of them as one batch, and
// each item is answered with its own result. Messages and receipts use it
// (internal/logic): a transaction, with its fsync, per item would cost more
// than the items themselves.
//
// A Loop's Add and Len are safe for concurrent use; Run is called once, on
// a goroutine its owner tracks.
package batch

import (
	"errors"
	"time"
)

// LingerBelow is the batch size from which a Window no longer waits.
const LingerBelow = 16

// ErrShortBatch is a commit that returned fewer (or more) results than
// items and no error: every item of the batch is answered with it.
var ErrShortBatch = errors.New("batch: commit returned a result count unlike the batch's")

// Config sets up a Loop. T is a queued item, R one item's result.
type Config[T, R any] struct {
	Depth int // queued items before Add refuses; at least 1
	Max   int // items per batch; at least 1

	// Commit stores one batch as one unit and returns a result per item,
	// in the batch's order, or an error for the whole batch. It runs on
	// Run's goroutine, one batch at a time, in queue order. Neither Commit
	// nor Answer may keep the batch slice (the items are theirs): the
	// Loop reuses it, so a busy loop allocates nothing per batch.
	Commit func(batch []T) ([]R, error)
	// Answer tells each item of a committed batch its outcome: res[i] is
	// batch[i]'s, or err is set (and res nil) when the commit failed. It
	// is called once per batch, in commit order, from one goroutine.
	Answer func(batch []T, res []R, err error)
	// Overlap, if above 0, runs Answer on a goroutine of its own, up to
	// Overlap committed batches behind Commit, so the next commit overlaps
	// this batch's answers (and a slow answer does not hold the queue).
	// With 0 Answer runs right after each Commit.
	Overlap int
	// Window, if above 0, lets a small batch (under LingerBelow items)
	// wait up to this long for more before its commit, while items
	// arrive faster than commits (the last batch had more than one): at
	// moderate rates each commit, with its fsync, then carries several
	// items instead of one or two. An item waits at most Window more; a
	// lone item (the last batch had one) never waits, and a busy loop's
	// batches are large enough not to.
	Window time.Duration
}

// Loop is a bounded queue and the goroutine that commits it in batches.
type Loop[T, R any] struct {
	cfg   Config[T, R]
	queue chan T
	free  chan []T // answered batches' slices, for reuse
	last  int      // the last batch's size (Run's goroutine only)
	timer *time.Timer
}

// New returns a Loop; nothing runs until Run.
func New[T, R any](cfg Config[T, R]) *Loop[T, R] {
	cfg.Depth = max(cfg.Depth, 1)
	cfg.Max = max(cfg.Max, 1)
	return &Loop[T, R]{cfg: cfg, queue: make(chan T, cfg.Depth), free: make(chan []T, cfg.Overlap+1)}
}

// Add queues x without blocking; false when the queue is full. Items
// added before Run's stop channel closes are committed before Run returns,
// so the owner must stop adding before it closes stop (logic does so under
// its stop gate).
func (l *Loop[T, R]) Add(x T) bool {
	select {
	case l.queue <- x:
		return true
	default:
		return false
	}
}

// Len is the number of queued items not yet taken into a batch.
func (l *Loop[T, R]) Len() int { return len(l.queue) }

// committed is a batch between Commit and Answer.
type committed[T, R any] struct {
	batch []T
	res   []R
	err   error
}

// Run commits batches until stop closes, then commits and answers what
// was queued before, and returns once every answer has been given.
func (l *Loop[T, R]) Run(stop <-chan struct{}) {
	answer := l.answer
	if l.cfg.Overlap > 0 {
		out := make(chan committed[T, R], l.cfg.Overlap)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for c := range out {
				l.answer(c)
			}
		}()
		defer func() { close(out); <-done }()
		answer = func(c committed[T, R]) { out <- c }
	}
	Consume(stop, l.queue, func(first T) { answer(l.commit(first)) })
}

// Consume runs fn for each item received from q until stop closes, then
// for the items still queued, and returns when q is empty: the stop-drain
// of every queue whose producers stop sending before stop closes (so that
// nothing queued is lost). fn runs on the caller's goroutine, in order.
func Consume[T any](stop <-chan struct{}, q <-chan T, fn func(T)) {
	for {
		select {
		case x := <-q:
			fn(x)
		case <-stop:
			for {
				select {
				case x := <-q:
					fn(x)
				default:
					return
				}
			}
		}
	}
}

// answer answers c and keeps its slice for a later batch.
func (l *Loop[T, R]) answer(c committed[T, R]) {
	l.cfg.Answer(c.batch, c.res, c.err)
	clear(c.batch) // the items may be collected
	select {
	case l.free <- c.batch[:0]:
	default:
	}
}

// commit takes first and whatever else is queued, up to Max, and commits it.
func (l *Loop[T, R]) commit(first T) committed[T, R] {
	var batch []T
	select {
	case batch = <-l.free:
	default:
		batch = make([]T, 0, min(l.cfg.Max, len(l.queue)+1))
	}
	batch = append(batch, first)
	batch = l.collect(batch)
	if l.cfg.Window > 0 && l.last > 1 && len(batch) < min(LingerBelow, l.cfg.Max) {
		batch = l.linger(batch)
	}
	batch = l.collect(batch) // what came in the last instant, up to Max
	l.last = len(batch)
	res, err := l.cfg.Commit(batch)
	if err == nil && len(res) != len(batch) {
		err = ErrShortBatch
	}
	if err != nil {
		res = nil
	}
	return committed[T, R]{batch: batch, res: res, err: err}
}

// collect adds what is queued to batch, up to Max.
func (l *Loop[T, R]) collect(batch []T) []T {
	for len(batch) < l.cfg.Max {
		select {
		case x := <-l.queue:
			batch = append(batch, x)
		default:
			return batch
		}
	}
	return batch
}

// linger adds items as they arrive for up to Window, until the batch is full.
func (l *Loop[T, R]) linger(batch []T) []T {
	if l.timer == nil {
		l.timer = time.NewTimer(l.cfg.Window)
	} else {
		l.timer.Reset(l.cfg.Window)
	}
	defer l.timer.Stop()
	for len(batch) < min(LingerBelow, l.cfg.Max) {
		select {
		case x := <-l.queue:
			batch = append(batch, x)
		case <-l.timer.C:
			return batch
		}
	}
	return batch
}
