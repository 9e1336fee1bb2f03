package gateway

import (
	"errors"
	"os"
	"sync"
	"syscall"
)

// The poller parks idle connections (see park.go): one epoll instance and
// one goroutine per gateway, which learns when a parked connection's socket
// has input and starts its reader again. Go's own netpoller keeps the
// socket registered as well; the two do not interfere (epoll allows one
// file in several instances), and the reader reads through net.Conn as
// usual once started.
type poller struct {
	epfd int
	ep   *os.File // epfd, registered with Go's netpoller (see run)
	wake [2]int   // a pipe: a byte in wake[1] ends run

	mu     sync.RWMutex // held (read) around epoll_ctl so close cannot race it
	closed bool
}

// wakeID is the event data of the wake pipe; session ids are above it
// (connIDBase).
const wakeID = 0

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, so os.NewFile hands it to Go's netpoller: an epoll
	// descriptor is readable while it has events.
	if err := syscall.SetNonblock(epfd, true); err != nil {
		syscall.Close(epfd)
		return nil, err
	}
	p := &poller{epfd: epfd, ep: os.NewFile(uintptr(epfd), "gateway-epoll")}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		p.ep.Close()
		return nil, err
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	setEventID(&ev, wakeID)
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, err
	}
	return p, nil
}

func setEventID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd, ev.Pad = int32(uint32(id)), int32(uint32(id>>32))
}

func eventID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// arm asks for one readiness event (EPOLLONESHOT) for the socket of rc,
// reported with id. first: the socket is probably not in the epoll set
// yet.
// Readiness already present when arm is called is reported too.
func (p *poller) arm(rc syscall.RawConn, id uint64, first bool) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errPollerClosed
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT}
	setEventID(&ev, id)
	var err error
	// Control holds the descriptor open while f runs: a concurrent close
	// cannot hand its number to another connection under our feet.
	cerr := rc.Control(func(fd uintptr) {
		// first is a hint: the other operation is tried if it is wrong.
		add, mod := syscall.EPOLL_CTL_ADD, syscall.EPOLL_CTL_MOD
		if !first {
			add, mod = mod, add
		}
		err = syscall.EpollCtl(p.epfd, add, int(fd), &ev)
		if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOENT) {
			err = syscall.EpollCtl(p.epfd, mod, int(fd), &ev)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// run reports each ready socket's id to ready until stop is called.
//
// It does not block in epoll_wait: a goroutine blocked in a syscall holds
// an OS thread, and each wake-up had to get a P back from the scheduler
// (a futex round trip or a thread hand-off), once per event on a gateway
// of idle connections whose pings arrive one at a time. Instead the epoll
// descriptor itself waits in Go's netpoller, like any socket, and run
// collects events with a zero timeout when it is readable.
func (p *poller) run(ready func(id uint64)) error {
	rc, err := p.ep.SyscallConn()
	if err != nil {
		p.shut()
		return err
	}
	events := make([]syscall.EpollEvent, 256)
	for {
		var n int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			n, werr = syscall.EpollWait(int(fd), events, 0)
			if errors.Is(werr, syscall.EINTR) {
				n, werr = 0, nil
			}
			return n > 0 || werr != nil // false: wait until readable
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			p.shut()
			return err
		}
		for i := range events[:n] {
			id := eventID(&events[i])
			if id == wakeID {
				p.shut()
				return nil
			}
			ready(id)
		}
	}
}

// stop makes run return; the epoll instance is closed then.
func (p *poller) stop() {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.closed {
		syscall.Write(p.wake[1], []byte{1})
	}
}

func (p *poller) shut() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.closeFDs()
}

func (p *poller) closeFDs() {
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
	p.ep.Close() // epfd
}
