package logic

import (
	"sync"

	"github.com/magpie-im/magpie/internal/batch"
)

// Lanes run the ordered part of client requests (sends, recalls, edits)
// off the bus subscription's goroutine, so one slow request stalls only the
// connections of its lane, while every request of one connection still
// runs in arrival order.
const (
	laneCount = 32
	laneDepth = 1024
)

// laneItem is one request in two steps: the first validates and
// authorizes, and may wait (a before-send webhook, a cache miss); it
// returns the second (nil if it answered already), which queues the
// request for the commit loop and runs in arrival order.
type laneItem func() (then func())

func makeLanes(n, depth int) []chan laneItem {
	ls := make([]chan laneItem, n)
	for i := range ls {
		ls[i] = make(chan laneItem, depth)
	}
	return ls
}

// inLane queues it on the lane of key; false if that lane is full or the
// service is stopping.
func (s *Service) inLane(key string, it laneItem) bool {
	queued := false
	s.accepting(func() {
		select {
		case s.lanes[shard(key, len(s.lanes))] <- it:
			queued = true
		default:
		}
	})
	return queued
}

// runLane runs the lane's items until Shutdown, then the ones queued
// before it; it returns after every goroutine it started (Service.wg
// counts runLane itself, so Shutdown waits for them all). Without hooks both steps run here in turn. With a before-send
// hook the first steps run concurrently, each on its own goroutine, and a
// second goroutine runs the second steps in arrival order: a slow hook
// then delays the lane's later requests by its own latency once, instead
// of capping the lane at one hook call at a time.
func (s *Service) runLane(l chan laneItem) {
	if s.cfg.Hooks == nil {
		s.drainLane(l, func(it laneItem) {
			if then := it(); then != nil {
				then()
			}
		})
		return
	}
	order := make(chan chan func(), laneDepth) // bounds the first steps in flight
	var steps sync.WaitGroup                   // the first steps' goroutines
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range order {
			if then := <-c; then != nil {
				then()
			}
		}
	}()
	s.drainLane(l, func(it laneItem) {
		c := make(chan func(), 1)
		order <- c
		steps.Add(1)
		go func() {
			defer steps.Done()
			c <- it()
		}()
	})
	close(order)
	<-done // every first step has answered by now: the order goroutine took each one's result
	steps.Wait()
}

func (s *Service) drainLane(l chan laneItem, run func(laneItem)) {
	batch.Consume(s.stop, l, run) // what was queued before the stop still runs
}
