package batch

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder commits by recording each batch, and answers by recording
// each item's result.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	answers []int // item values in answer order
	errs    []error
	fail    func(batch []int) error // nil: every commit succeeds
	gate    chan struct{}           // if set, each commit waits for a value
	entered chan struct{}           // if set, each commit says it started
}

func (r *recorder) commit(batch []int) ([]int, error) {
	if r.entered != nil {
		r.entered <- struct{}{}
	}
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(batch))
	r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(batch); err != nil {
			return nil, err
		}
	}
	res := make([]int, len(batch))
	for i, x := range batch {
		res[i] = x * 10
	}
	return res, nil
}

func (r *recorder) answer(batch []int, res []int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, x := range batch {
		r.answers = append(r.answers, x)
		r.errs = append(r.errs, err)
		if err == nil && res[i] != x*10 {
			panic("result not the item's")
		}
	}
}

func newLoop(r *recorder, depth, max, overlap int) *Loop[int, int] {
	return New(Config[int, int]{Depth: depth, Max: max, Commit: r.commit, Answer: r.answer, Overlap: overlap})
}

// run starts l and returns a func that stops it and waits for Run.
func run(l *Loop[int, int]) (stop func()) {
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ch) }()
	return func() { close(ch); <-done }
}

func TestOrderAndLimits(t *testing.T) {
	for _, tt := range []struct {
		name         string
		max, overlap int
	}{
		{"max 1", 1, 0},
		{"max 3", 3, 0},
		{"max 3 overlapped", 3, 2},
		{"max 100", 100, 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{}
			l := newLoop(r, 1000, tt.max, tt.overlap)
			for i := range 50 {
				if !l.Add(i) {
					t.Fatalf("Add(%d) refused with room", i)
				}
			}
			run(l)() // everything queued before stop is committed
			var flat []int
			for _, b := range r.batches {
				if len(b) == 0 || len(b) > tt.max {
					t.Errorf("batch of %d, want 1..%d", len(b), tt.max)
				}
				flat = append(flat, b...)
			}
			want := make([]int, 50)
			for i := range want {
				want[i] = i
			}
			if !slices.Equal(flat, want) {
				t.Errorf("committed %v, want %v in order", flat, want)
			}
			if !slices.Equal(r.answers, want) {
				t.Errorf("answered %v, want %v in order", r.answers, want)
			}
			// All 50 were queued before Run: batches are as full as allowed.
			if got, want := len(r.batches), (50+tt.max-1)/tt.max; got != want {
				t.Errorf("%d batches, want %d", got, want)
			}
		})
	}
}

// Items queued while a commit runs go into the next batch together.
func TestCollectsWhileCommitting(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), entered: make(chan struct{})}
	l := newLoop(r, 100, 10, 0)
	stop := run(l)
	l.Add(0)
	<-r.entered // committing [0]; 1..5 queue behind it
	for i := 1; i <= 5; i++ {
		l.Add(i)
	}
	r.gate <- struct{}{}
	<-r.entered
	r.gate <- struct{}{}
	stop()
	if want := [][]int{{0}, {1, 2, 3, 4, 5}}; !slices.EqualFunc(r.batches, want, slices.Equal) {
		t.Errorf("batches %v, want %v", r.batches, want)
	}
}

func TestAddRefusesWhenFull(t *testing.T) {
	r := &recorder{}
	l := newLoop(r, 2, 10, 0)
	if !l.Add(1) || !l.Add(2) {
		t.Fatal("Add refused with room")
	}
	if l.Add(3) {
		t.Fatal("Add accepted beyond Depth")
	}
	if l.Len() != 2 {
		t.Errorf("Len %d, want 2", l.Len())
	}
	run(l)()
	if !slices.Equal(r.answers, []int{1, 2}) {
		t.Errorf("answered %v, want [1 2]", r.answers)
	}
}

// Stop with items queued: Run commits and answers them all before it
// returns, also when answers overlap commits.
func TestStopDrains(t *testing.T) {
	for _, overlap := range []int{0, 1} {
		r := &recorder{gate: make(chan struct{})}
		l := newLoop(r, 100, 4, overlap)
		ch := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); l.Run(ch) }()
		for i := range 10 {
			l.Add(i)
		}
		close(ch) // Run may be in its first commit or not started yet
		go func() {
			for {
				select {
				case r.gate <- struct{}{}:
				case <-done:
					return
				}
			}
		}()
		<-done
		if len(r.answers) != 10 {
			t.Errorf("overlap %d: %d answered before Run returned, want 10", overlap, len(r.answers))
		}
	}
}

// A failing commit answers every item of its batch with the error, and
// the loop goes on with the next batch.
func TestFailingCommit(t *testing.T) {
	boom := errors.New("boom")
	r := &recorder{fail: func(b []int) error {
		if b[0] == 0 {
			return boom
		}
		return nil
	}}
	l := newLoop(r, 100, 2, 1)
	for i := range 4 {
		l.Add(i)
	}
	run(l)()
	want := []error{boom, boom, nil, nil}
	if !slices.Equal(r.errs, want) {
		t.Errorf("errors %v, want %v", r.errs, want)
	}
}

func TestShortBatch(t *testing.T) {
	var got []error
	l := New(Config[int, int]{Depth: 10, Max: 10,
		Commit: func(b []int) ([]int, error) { return make([]int, len(b)-1), nil },
		Answer: func(b []int, res []int, err error) {
			if res != nil {
				t.Errorf("results %v with an error", res)
			}
			for range b {
				got = append(got, err)
			}
		},
	})
	l.Add(1)
	l.Add(2)
	run(l)()
	if len(got) != 2 || !errors.Is(got[0], ErrShortBatch) || !errors.Is(got[1], ErrShortBatch) {
		t.Errorf("answers %v, want ErrShortBatch twice", got)
	}
}

// The loop allocates per batch, not per item.
func BenchmarkLoop(b *testing.B) {
	b.ReportAllocs()
	l := New(Config[int, int]{Depth: 1024, Max: 512,
		Commit: func(batch []int) ([]int, error) { return batch, nil },
		Answer: func([]int, []int, error) {},
	})
	stop := run(l)
	for i := range b.N {
		for !l.Add(i) {
		}
	}
	stop()
}

func TestConsumeDrains(t *testing.T) {
	q := make(chan int, 10)
	stop := make(chan struct{})
	for i := range 5 {
		q <- i
	}
	close(stop) // before Consume even starts: the queued items still run
	var got []int
	Consume(stop, q, func(x int) { got = append(got, x) })
	if !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Errorf("consumed %v, want 0..4 in order", got)
	}
}

// With a Window, a small batch behind a batch of several waits for more
// items (up to LingerBelow here, the window being an hour); a batch behind
// a lone item does not wait.
func TestWindowLingers(t *testing.T) {
	start := func(first ...int) (l *Loop[int, int], batches chan []int, stop func()) {
		batches = make(chan []int, 100)
		l = New(Config[int, int]{Depth: 100, Max: 100, Window: time.Hour,
			Commit: func(b []int) ([]int, error) { batches <- slices.Clone(b); return b, nil },
			Answer: func([]int, []int, error) {}})
		for _, x := range first {
			l.Add(x) // queued before Run: the first batch
		}
		return l, batches, run(l)
	}
	next := func(batches chan []int) []int {
		t.Helper()
		select {
		case b := <-batches:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no commit within 10 s")
			return nil
		}
	}
	t.Run("behind several", func(t *testing.T) {
		l, batches, stop := start(1, 2)
		defer stop()
		if b := next(batches); !slices.Equal(b, []int{1, 2}) {
			t.Fatalf("first batch %v", b)
		}
		var want []int
		for i := 3; i < 3+LingerBelow; i++ {
			l.Add(i)
			want = append(want, i)
			time.Sleep(5 * time.Millisecond) // one at a time: without the window each would commit alone
		}
		if b := next(batches); !slices.Equal(b, want) {
			t.Errorf("second batch %v, want %v", b, want)
		}
	})
	t.Run("behind one", func(t *testing.T) {
		l, batches, stop := start(0)
		defer stop()
		next(batches)
		l.Add(1)
		if b := next(batches); !slices.Equal(b, []int{1}) {
			t.Errorf("second batch %v, want [1]", b)
		}
	})
}
