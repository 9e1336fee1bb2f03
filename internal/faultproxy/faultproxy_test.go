package faultproxy

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// echoServer writes every frame it reads back; it closes a connection
// when it reads a kick.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fr := wire.NewReader(c, 0, 0)
				for {
					b, err := fr.ReadFrame()
					if err != nil {
						return
					}
					env := &magpiepb.Envelope{}
					if proto.Unmarshal(b, env) == nil && env.GetKick() != nil {
						return
					}
					if _, err := c.Write(wire.AppendFrame(nil, b)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type testConn struct {
	t  *testing.T
	nc net.Conn
	fr *wire.Reader
}

func dial(t *testing.T, p *Proxy) *testConn {
	t.Helper()
	nc, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &testConn{t: t, nc: nc, fr: wire.NewReader(nc, 0, 0)}
}

func (c *testConn) send(env *magpiepb.Envelope) {
	c.t.Helper()
	b, _ := proto.Marshal(env)
	if _, err := c.nc.Write(wire.AppendFrame(nil, b)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next envelope, or returns the read error.
func (c *testConn) next() (*magpiepb.Envelope, error) {
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := c.fr.ReadFrame()
	if err != nil {
		return nil, err
	}
	env := &magpiepb.Envelope{}
	return env, proto.Unmarshal(b, env)
}

func ping(id uint64) *magpiepb.Envelope {
	return &magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{}}}
}

func pong(id uint64) *magpiepb.Envelope {
	return &magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Pong{Pong: &magpiepb.Pong{}}}
}

func wantIDs(t *testing.T, c *testConn, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		env, err := c.next()
		if err != nil || env.GetId() != id {
			t.Fatalf("got %v, %v; want envelope %d", env, err, id)
		}
	}
}

func TestHoldReleaseDropAndStall(t *testing.T) {
	p := New(t)
	p.SetUpstream(echoServer(t))
	c := dial(t, p)
	// Hold the echoes of 1-3 on their way back; drop 4 towards the server.
	p.SetRule(func(f *Frame) Action {
		switch id := f.Env.GetId(); {
		case f.Dir == ToClient && id <= 3:
			return Hold
		case f.Dir == ToServer && id == 4:
			return Drop
		}
		return Pass
	})
	for id := uint64(1); id <= 5; id++ {
		c.send(ping(id))
	}
	wantIDs(t, c, 5)
	var held []*Frame
	for deadline := time.Now().Add(5 * time.Second); len(held) < 3 && time.Now().Before(deadline); {
		held = append(held, p.Held()...)
		time.Sleep(time.Millisecond)
	}
	if len(held) != 3 {
		t.Fatalf("held %d frames, want 3", len(held))
	}
	if err := p.Release(nil, held[2], held[0], held[0], held[1]); err != nil {
		t.Fatal(err)
	}
	wantIDs(t, c, 3, 1, 1, 2)
	if n := p.Count(func(f *Frame) bool { return f.Dir == ToServer }); n != 5 {
		t.Fatalf("counted %d frames to the server, want 5", n)
	}
	// A stall swallows pongs to the client and nothing else.
	p.SetRule(nil)
	p.Stall(true)
	c.send(pong(6))
	c.send(ping(7))
	wantIDs(t, c, 7)
	p.Stall(false)
	c.send(pong(8))
	wantIDs(t, c, 8)
}

func TestCutPartitionAndKill(t *testing.T) {
	p := New(t)
	p.SetUpstream(echoServer(t))
	a := dial(t, p)
	p.SetRule(func(f *Frame) Action {
		if f.Env.GetId() == 2 {
			return Cut
		}
		return Pass
	})
	a.send(ping(1))
	wantIDs(t, a, 1)
	a.send(ping(2))
	if _, err := a.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after a cut: got %v, want EOF", err)
	}
	// Partitioned, the server closing (it does on a kick) is not passed on:
	// the client keeps a silent, open connection until the kill.
	p.SetRule(func(f *Frame) Action {
		if f.Env.GetKick() != nil {
			p.Partition() // from here on; this kick still passes
		}
		return Pass
	})
	b := dial(t, p)
	b.send(ping(3))
	wantIDs(t, b, 3)
	b.send(&magpiepb.Envelope{Id: 4, Body: &magpiepb.Envelope_Kick{Kick: &magpiepb.Kick{}}})
	serverGone := func() bool {
		cs := p.Conns()
		if len(cs) != 1 {
			return false
		}
		cs[0].mu.Lock()
		defer cs[0].mu.Unlock()
		return cs[0].serverGone
	}
	for deadline := time.Now().Add(5 * time.Second); !serverGone(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the server end did not close")
		}
	}
	b.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := b.fr.ReadFrame(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("partitioned: got %v, want a silent connection", err)
	}
	p.Kill()
	b.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the kill: got %v, want EOF", err)
	}
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.Close()
		t.Fatal("a dial after the kill was accepted")
	}
}
