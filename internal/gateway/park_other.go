//go:build !linux

package gateway

import (
	"errors"
	"syscall"
)

// Elsewhere than Linux connections are not parked: every one keeps a
// reader goroutine (see park.go).
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("gateway: no poller on this system") }

func (p *poller) arm(syscall.RawConn, uint64, bool) error { return errPollerClosed }
func (p *poller) run(func(uint64)) error                  { return nil }
func (p *poller) stop()                                   {}
