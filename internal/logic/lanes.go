package logic

// Lanes run the ordered part of client requests (sends, recalls, edits)
// off the bus subscription's goroutine, so one slow request (a before-send
// webhook, a cache miss) stalls only the connections of its lane, while
// every request of one connection still runs in arrival order.
const (
	laneCount = 32
	laneDepth = 1024
)

func makeLanes(n, depth int) []chan func() {
	ls := make([]chan func(), n)
	for i := range ls {
		ls[i] = make(chan func(), depth)
	}
	return ls
}

// inLane queues fn on the lane of key; false if that lane is full or the
// service is stopping.
func (s *Service) inLane(key string, fn func()) bool {
	queued := false
	s.accepting(func() {
		select {
		case s.lanes[shard(key, len(s.lanes))] <- fn:
			queued = true
		default:
		}
	})
	return queued
}

func (s *Service) runLane(l chan func()) {
	for {
		select {
		case fn := <-l:
			fn()
		case <-s.stop:
			for { // finish what was queued before the stop
				select {
				case fn := <-l:
					fn()
				default:
					return
				}
			}
		}
	}
}
