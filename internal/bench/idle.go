package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// idleConns is a set of idle raw connections with heartbeats: W1's, and
// W7's idle part. Each connection has one reader goroutine (readLoop); the
// pinger is the only writer after authentication; close ends both.
type idleConns struct {
	conns                  []*rawConn
	closing                atomic.Bool
	failed, dropped, pongs atomic.Int64
	pings                  atomic.Int64
	heartbeat              atomic.Int64 // the server's, from auth_ok
	readers, pinger        sync.WaitGroup
	stopPing               context.CancelFunc
	errMu                  sync.Mutex
	errCounts              map[string]int
	latMu                  sync.Mutex
	connectLat             Histogram // dial → auth_ok
}

func newIdleConns(n int) *idleConns {
	return &idleConns{conns: make([]*rawConn, n), errCounts: map[string]int{}, stopPing: func() {}}
}

func (s *idleConns) noteErr(what string, err error) {
	msg := what + ": " + err.Error()
	// Strip addresses so equal errors group together.
	if i := strings.LastIndex(msg, ": "); i > 0 && strings.Count(msg, ":") > 3 {
		msg = what + ": " + msg[i+2:]
	}
	s.errMu.Lock()
	s.errCounts[msg]++
	s.errMu.Unlock()
}

// errors lists the errors seen, counted.
func (s *idleConns) errors(errs []string) []string {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return appendErrorCounts(errs, s.errCounts)
}

// open dials and authenticates every connection, conc at a time, from the
// --sources in turn; a failure is counted and the connection left nil.
func (s *idleConns) open(ctx context.Context, c *common, logins []login, conc int) error {
	return openRawConns(ctx, c, logins, len(s.conns), conc, nil, func(stage string, err error) {
		s.failed.Add(1)
		s.noteErr(stage, err)
	}, func(i int, rc *rawConn, hb, d time.Duration) {
		s.heartbeat.Store(int64(hb))
		s.latMu.Lock()
		s.connectLat.RecordDuration(d)
		s.latMu.Unlock()
		s.conns[i] = rc
		s.readers.Add(1)
		go s.readLoop(rc)
	})
}

func (s *idleConns) readLoop(rc *rawConn) {
	defer s.readers.Done()
	for {
		env, err := rc.read()
		if err != nil {
			if !s.closing.Load() {
				s.dropped.Add(1)
				s.noteErr("dropped", err)
			}
			return
		}
		switch b := env.Body.(type) {
		case *magpiepb.Envelope_Pong:
			s.pongs.Add(1)
		case *magpiepb.Envelope_Kick:
			if !s.closing.Load() {
				s.noteErr("kicked", fmt.Errorf("code %d (%s)", b.Kick.GetCode(), wire.Code(b.Kick.GetCode())))
			}
		}
	}
}

// startPings pings every connection once per interval (0: the server's
// heartbeat, else 30 s) until stopPings, and returns the interval used.
func (s *idleConns) startPings(ctx context.Context, interval time.Duration) time.Duration {
	if interval <= 0 {
		interval = time.Duration(s.heartbeat.Load())
	}
	if interval <= 0 {
		interval = 30 * time.Second
	}
	pingCtx, stop := context.WithCancel(ctx)
	s.stopPing = stop
	s.pinger.Go(func() { pingLoop(pingCtx, s.conns, interval, &s.pings) })
	return interval
}

func (s *idleConns) stopPings() {
	s.stopPing()
	s.pinger.Wait()
}

// close stops the pinger and closes every connection; drops are no longer
// counted.
func (s *idleConns) close() {
	s.stopPings()
	s.closing.Store(true)
	for _, rc := range s.conns {
		if rc != nil {
			rc.close()
		}
	}
	s.readers.Wait()
}
