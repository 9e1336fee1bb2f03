// Package faultproxy is a TCP proxy for tests that understands Magpie's
// length-prefixed protobuf frames. It sits between the SDK and a real
// gateway's TCP listener (the server advertises the proxy's address at
// login) and lets a test decide, per envelope and direction, to pass it,
// drop it, hold it (to release later, in any order or more than once) or cut
// the connection; to stall (swallow pongs, like a peer that died without a
// FIN); to partition (drop everything and keep both ends open); and to kill
// it (close the listener so dials are refused, and every connection).
//
// The proxy never invents a server: what reaches the client is what the
// real gateway wrote, reordered, repeated or withheld. The one exception is
// Conn.Send, for a test that must play an older gateway's refusal.
package faultproxy

import (
	"errors"
	"net"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// Dir is the direction a frame travels.
type Dir int

const (
	ToServer Dir = iota // client to gateway
	ToClient            // gateway to client
)

func (d Dir) String() string {
	if d == ToServer {
		return "to-server"
	}
	return "to-client"
}

// Action is what a Rule does with a frame.
type Action int

const (
	Pass Action = iota // forward it
	Drop               // forget it
	Hold               // keep it for Release
	Cut                // close the connection (both ends) instead
)

// Frame is one envelope seen by the proxy.
type Frame struct {
	Conn *Conn
	Dir  Dir
	Env  *magpiepb.Envelope
	raw  []byte // the payload as the sender wrote it
}

// Rule decides a frame's fate. It runs on the connection's pump goroutine,
// with no proxy lock held: it may call Conn.Send, Conn.Cut or Proxy methods.
type Rule func(f *Frame) Action

// Proxy forwards frames from its listener to an upstream address.
type Proxy struct {
	ln net.Listener
	wg sync.WaitGroup

	mu          sync.Mutex
	upstream    string
	rule        Rule
	stall       bool // drop pongs to the client
	partitioned bool // drop everything; an end closing does not close the other
	killed      bool
	conns       []*Conn // every connection, live or not, in accept order
	held        []*Frame
	seen        []*Frame // every frame, before its rule ran
}

// Conn is one proxied connection.
type Conn struct {
	p              *Proxy
	client, server net.Conn
	cmu, smu       sync.Mutex // serialize writes to client and server
	closeOnce      sync.Once

	mu           sync.Mutex
	user, device string // from the gateway's AuthOK
	closed       bool
	clientGone   bool
	serverGone   bool
}

// New listens on a loopback port; the proxy stops at the end of the test.
// Connections accepted before SetUpstream are refused.
func New(t testing.TB) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Kill)
	return p
}

// Addr is the address clients should dial (the gateway's advertised TCP).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetUpstream sets the gateway address new connections go to.
func (p *Proxy) SetUpstream(addr string) { p.mu.Lock(); p.upstream = addr; p.mu.Unlock() }

// SetRule installs r for every later frame (nil: pass everything).
func (p *Proxy) SetRule(r Rule) { p.mu.Lock(); p.rule = r; p.mu.Unlock() }

// Stall makes the proxy swallow pongs to the client (or stop doing so):
// the connection looks alive to the kernel but the peer answers nothing.
func (p *Proxy) Stall(on bool) { p.mu.Lock(); p.stall = on; p.mu.Unlock() }

// Partition drops every later frame in both directions, and an end that
// closes no longer closes the other: the client keeps a silent connection,
// as across a network partition or with a host that died.
func (p *Proxy) Partition() { p.mu.Lock(); p.partitioned = true; p.mu.Unlock() }

// Kill is kill -9 seen from the network: the listener closes (dials are
// refused) and every connection drops without a word.
func (p *Proxy) Kill() {
	p.mu.Lock()
	p.killed = true
	conns := slices.Clone(p.conns)
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		c.Cut()
	}
	p.wg.Wait()
}

// CutAll closes every live connection (both ends); the listener stays.
func (p *Proxy) CutAll() {
	for _, c := range p.Conns() {
		c.Cut()
	}
}

// Conns returns the live connections, in accept order.
func (p *Proxy) Conns() []*Conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Conn
	for _, c := range p.conns {
		if !c.isClosed() {
			out = append(out, c)
		}
	}
	return out
}

// ConnsOf returns the live, authenticated connections of user.
func (p *Proxy) ConnsOf(user string) []*Conn {
	var out []*Conn
	for _, c := range p.Conns() {
		if c.User() == user {
			out = append(out, c)
		}
	}
	return out
}

// Held returns the frames held so far (oldest first) and forgets them.
func (p *Proxy) Held() []*Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.held
	p.held = nil
	return h
}

// Count reports how many frames seen so far match f.
func (p *Proxy) Count(f func(*Frame) bool) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, fr := range p.seen {
		if f(fr) {
			n++
		}
	}
	return n
}

// Seen returns the frames seen so far that match f, oldest first.
func (p *Proxy) Seen(f func(*Frame) bool) []*Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Frame
	for _, fr := range p.seen {
		if f(fr) {
			out = append(out, fr)
		}
	}
	return out
}

// Release writes each frame, in the order given (a frame may be given more
// than once), on its own connection and direction, or on conn if it is not
// nil: a message held on a connection that is gone can be replayed on the
// new one, as a late duplicate.
func (p *Proxy) Release(conn *Conn, frames ...*Frame) error {
	var errs []error
	for _, f := range frames {
		c := f.Conn
		if conn != nil {
			c = conn
		}
		errs = append(errs, c.write(f.Dir, f.raw))
	}
	return errors.Join(errs...)
}

// User is the username the gateway authenticated on this connection ("" before AuthOK).
func (c *Conn) User() string { c.mu.Lock(); defer c.mu.Unlock(); return c.user }

// Device is the device the gateway authenticated on this connection.
func (c *Conn) Device() string { c.mu.Lock(); defer c.mu.Unlock(); return c.device }

// Cut closes both ends.
func (c *Conn) Cut() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.client.Close()
		c.server.Close()
	})
}

// Send writes env on this connection in direction d, as if its sender had.
func (c *Conn) Send(d Dir, env *magpiepb.Envelope) error {
	b, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	return c.write(d, b)
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || (c.clientGone && c.serverGone)
}

func (c *Conn) write(d Dir, payload []byte) error {
	dst, mu := c.server, &c.smu
	if d == ToClient {
		dst, mu = c.client, &c.cmu
	}
	mu.Lock()
	defer mu.Unlock()
	_, err := dst.Write(wire.AppendFrame(nil, payload))
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up, killed := p.upstream, p.killed
		p.mu.Unlock()
		if up == "" || killed {
			nc.Close()
			continue
		}
		sc, err := net.Dial("tcp", up)
		if err != nil {
			nc.Close()
			continue
		}
		c := &Conn{p: p, client: nc, server: sc}
		p.mu.Lock()
		if p.killed {
			p.mu.Unlock()
			c.Cut()
			continue
		}
		p.conns = append(p.conns, c)
		p.wg.Add(2)
		p.mu.Unlock()
		go c.pump(ToServer)
		go c.pump(ToClient)
	}
}

// pump forwards frames in direction d until a read fails.
func (c *Conn) pump(d Dir) {
	defer c.p.wg.Done()
	src := c.client
	if d == ToClient {
		src = c.server
	}
	fr := wire.NewReader(src, 0, 0)
	for {
		b, err := fr.ReadFrame()
		if err != nil {
			c.p.mu.Lock()
			partitioned := c.p.partitioned
			c.p.mu.Unlock()
			if !partitioned {
				c.Cut()
				return
			}
			// Partitioned: this end is gone, the other must not notice.
			src.Close()
			c.mu.Lock()
			if d == ToServer {
				c.clientGone = true
			} else {
				c.serverGone = true
			}
			c.mu.Unlock()
			return
		}
		raw := slices.Clone(b)
		env := &magpiepb.Envelope{}
		if err := proto.Unmarshal(raw, env); err != nil {
			// Not ours to judge: the gateway answers garbage itself.
			_ = c.write(d, raw)
			continue
		}
		if ok := env.GetAuthOk(); ok != nil && d == ToClient {
			c.mu.Lock()
			c.user, c.device = ok.GetUsername(), ok.GetDevice()
			c.mu.Unlock()
		}
		f := &Frame{Conn: c, Dir: d, Env: env, raw: raw}
		c.p.mu.Lock()
		c.p.seen = append(c.p.seen, f)
		rule, stall, partitioned := c.p.rule, c.p.stall, c.p.partitioned
		c.p.mu.Unlock()
		act := Pass
		switch {
		case partitioned:
			act = Drop
		case stall && d == ToClient && env.GetPong() != nil:
			act = Drop
		case rule != nil:
			act = rule(f)
		}
		switch act {
		case Pass:
			if c.write(d, raw) != nil {
				c.Cut()
			}
		case Hold:
			c.p.mu.Lock()
			c.p.held = append(c.p.held, f)
			c.p.mu.Unlock()
		case Cut:
			c.Cut()
		}
	}
}
