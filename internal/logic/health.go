package logic

import (
	"context"
	"sync"
	"time"
)

// healthMisses is how many pings in a row must fail before the node calls
// the database unreachable: one slow ping is not an outage.
const healthMisses = 2

// storeHealth is whether the database answers. A node that cannot reach it
// should stop taking requests (Config.OnStoreHealth) so that gateways'
// requests go to a node that can commit them, and tell load balancers
// through /healthz (StoreErr).
type storeHealth struct {
	mu  sync.Mutex
	err error // nil while the database answers
}

// set records err and reports whether health changed (up to down or back).
func (h *storeHealth) set(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := (h.err == nil) != (err == nil)
	h.err = err
	return changed
}

// StoreErr is nil while the database answers, else the last ping's error.
func (s *Service) StoreErr() error {
	s.health.mu.Lock()
	defer s.health.mu.Unlock()
	return s.health.err
}

// watchStore pings the store until Shutdown.
func (s *Service) watchStore() {
	t := time.NewTicker(s.cfg.HealthInterval)
	defer t.Stop()
	misses := 0
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HealthTimeout)
		err := s.store.Ping(ctx)
		cancel()
		if err == nil {
			misses = 0
		} else if misses++; misses < healthMisses {
			continue
		}
		if !s.health.set(err) {
			continue
		}
		if err != nil {
			s.log.Warn("database unreachable: leaving the request queue", "err", err)
		} else {
			s.log.Info("database reachable again: serving requests")
		}
		if s.cfg.OnStoreHealth != nil {
			s.cfg.OnStoreHealth(err == nil)
		}
	}
}
