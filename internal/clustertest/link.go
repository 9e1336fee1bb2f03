package clustertest

import (
	"net"
	"sync"
	"time"
)

// Link is a TCP proxy that stands where a network path would, between one
// process and a dependency (NATS, PostgreSQL), so that a fault can cut it.
//
// Partition stops every byte in both directions without closing anything,
// the way a dropped route does: neither end learns of it except by its own
// timeouts. Heal lets the held bytes flow again. Reset closes every
// connection, as when the partition lasted past the TCP timeouts.
type Link struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	up    chan struct{} // closed while bytes may flow
	conns map[net.Conn]bool
	done  bool
}

// NewLink listens on listen (e.g. "127.0.0.1:0" for a free port) and
// forwards to target.
func NewLink(listen, target string) (*Link, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	l := &Link{ln: ln, target: target, up: make(chan struct{}), conns: map[net.Conn]bool{}}
	close(l.up)
	go l.accept()
	return l, nil
}

// Addr is where the process should connect instead of the target.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// Partition holds every byte (and every new connection) until Heal.
func (l *Link) Partition() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.up:
		l.up = make(chan struct{})
	default: // already down
	}
}

// Heal lets bytes flow again; connections opened meanwhile go through.
func (l *Link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.up:
	default:
		close(l.up)
	}
}

// Reset closes every connection through the link, with a TCP reset.
func (l *Link) Reset() {
	l.mu.Lock()
	cs := make([]net.Conn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
}

// Close stops the link and everything through it.
func (l *Link) Close() {
	l.mu.Lock()
	l.done = true
	l.mu.Unlock()
	l.ln.Close()
	l.Heal() // release goroutines waiting to forward
	l.Reset()
}

// wait blocks while the link is partitioned.
func (l *Link) wait() {
	l.mu.Lock()
	up := l.up
	l.mu.Unlock()
	<-up
}

// track registers c; false if the link is closed (c is then closed).
func (l *Link) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		c.Close()
		return false
	}
	l.conns[c] = true
	return true
}

func (l *Link) untrack(cs ...net.Conn) {
	l.mu.Lock()
	for _, c := range cs {
		delete(l.conns, c)
		c.Close()
	}
	l.mu.Unlock()
}

func (l *Link) accept() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if l.track(c) {
			go l.serve(c)
		}
	}
}

func (l *Link) serve(client net.Conn) {
	l.wait() // a connection opened during a partition gets no answer
	server, err := net.DialTimeout("tcp", l.target, 5*time.Second)
	if err != nil {
		l.untrack(client)
		return
	}
	if !l.track(server) {
		l.untrack(client)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.copy(server, client) }()
	go func() { defer wg.Done(); l.copy(client, server) }()
	wg.Wait()
	l.untrack(client, server)
}

// copy forwards src to dst, holding each chunk while partitioned; the end
// of either direction ends both.
func (l *Link) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.wait()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil { // EOF, or a reset from either end
			break
		}
	}
	dst.Close()
	src.Close()
}
