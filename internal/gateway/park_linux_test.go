package gateway

import (
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The poller reports a socket that became readable once per arm, and stop
// ends run. Its wait is in Go's netpoller, not a blocking epoll_wait: no
// goroutine of this package sits in a syscall while nothing is ready.
func TestPollerReportsReadySockets(t *testing.T) {
	p, err := newPoller()
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan uint64, 4)
	done := make(chan error, 1)
	go func() { done <- p.run(func(id uint64) { ready <- id }) }()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc := tcpRawConn(conn)
	if err := p.arm(rc, 42, true); err != nil {
		t.Fatal(err)
	}
	// run's zero-timeout EpollWait may be caught in passing, a blocked
	// one is there every time.
	blocked := true
	for range 3 {
		time.Sleep(10 * time.Millisecond)
		blocked = blocked && goroutinesIn("syscall.EpollWait") > 0
	}
	if blocked {
		t.Fatal("a goroutine stays in EpollWait; want the wait in the netpoller")
	}
	select {
	case id := <-ready:
		t.Fatalf("ready(%d) before any input", id)
	default:
	}
	peer.Write([]byte("x"))
	if id := <-ready; id != 42 {
		t.Fatalf("ready(%d), want 42", id)
	}
	// One-shot: the unread byte is not reported again until re-armed.
	peer.Write([]byte("y"))
	select {
	case id := <-ready:
		t.Fatalf("ready(%d) again without a re-arm", id)
	case <-time.After(50 * time.Millisecond):
	}
	if err := p.arm(rc, 43, false); err != nil {
		t.Fatal(err)
	}
	if id := <-ready; id != 43 {
		t.Fatalf("ready(%d) after re-arm, want 43", id)
	}
	p.stop()
	if err := <-done; err != nil {
		t.Fatalf("run after stop: %v", err)
	}
	if err := p.arm(rc, 44, false); err != errPollerClosed {
		t.Fatalf("arm after stop: %v, want errPollerClosed", err)
	}
}

// goroutinesIn counts goroutines whose stack contains fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			n++
		}
	}
	return n
}
