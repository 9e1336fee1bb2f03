package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// BenchmarkDeliverFanout measures one Deliver to N TCP connections whose
// clients read as fast as they can, waiting until every copy was written.
// Allocations include the flush goroutines' work.
func BenchmarkDeliverFanout(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			ts := startServer(b, Config{SendQueue: 1 << 16})
			d := &clusterpb.Delivery{Envelope: messageBytes(b, "a group message of a typical size, about one hundred bytes long....", 0)}
			for i := range n {
				c := ts.dial(b, kindTCP)
				user := "u" + strconv.Itoa(i)
				c.login(user)
				d.Conns = append(d.Conns, connOf(b, ts, user))
				go io.Copy(io.Discard, c.conn)
			}
			out := func() uint64 { return ts.g.Stats().FramesOut }
			start := out()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				ts.g.Deliver(d)
			}
			want := start + uint64(b.N*n)
			for out() < want {
				runtime.Gosched()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/delivery")
		})
	}
}

// BenchmarkDeliverEncode measures Deliver itself (queueing, one JSON
// transcoding shared by the JSON connections) without the sockets: the
// sessions' flushers write to a transport that drops the frames.
func BenchmarkDeliverEncode(b *testing.B) {
	for _, enc := range []encoding{encProto, encJSON} {
		b.Run([]string{"proto", "json"}[enc]+"/conns=1000", func(b *testing.B) {
			g := New(Config{ID: "bench"}, &fakeLogic{}, newFakePresence(), testLogger(b))
			d := &clusterpb.Delivery{Envelope: messageBytes(b, "hello", 0)}
			for i := range 1000 {
				s := &session{g: g, t: nullTransport{}, id: uint64(i + 1), enc: enc, authed: true}
				g.shards.addConn(s)
				d.Conns = append(d.Conns, s.id)
			}
			b.ReportAllocs()
			for range b.N {
				g.Deliver(d)
			}
			g.wg.Wait()
		})
	}
}

type nullTransport struct{}

func (nullTransport) readFrame() ([]byte, error)            { return nil, io.EOF }
func (nullTransport) setReadDeadline(time.Time) error       { return nil }
func (nullTransport) writeFrames([][]byte, time.Time) error { return nil }
func (nullTransport) shutdownWrite(wire.Code, time.Time)    {}
func (nullTransport) discard()                              {}
func (nullTransport) close()                                {}

// BenchmarkIdleConnMemory measures user-space memory per idle authenticated
// connection (heap + goroutine stacks, after GC). The clients live in this
// process too, as bare sockets; their cost, and that of the server's bare
// socket, is measured by a baseline of N socket pairs with no gateway, of
// which half is added back. Run with -benchtime=1x; figures are reported,
// never asserted.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 2000
	baseline := func() float64 {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		before := memInUse()
		if os.Getenv("MAGPIE_MEMDETAIL") != "" {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			b.Logf("baseline before: heap %d stack %d", m.HeapInuse, m.StackInuse)
		}
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			s, _ := ln.Accept()
			conns = append(conns, c, s)
		}
		used := memInUse() - before
		for _, c := range conns {
			c.Close()
		}
		return used / n
	}()
	for _, kind := range []string{"tcp", "ws"} {
		b.Run(kind, func(b *testing.B) {
			ts := startServer(b, Config{})
			before := memInUse()
			beforeRSS := rss()
			for i := range n {
				var c net.Conn
				if kind == "tcp" {
					c = dialTCPRaw(b, ts.tcpAddr, "u"+strconv.Itoa(i))
				} else {
					c = dialWSRaw(b, ts.http.Listener.Addr().String(), "u"+strconv.Itoa(i))
				}
				b.Cleanup(func() { c.Close() })
			}
			waitFor(b, "auths", func() bool { return ts.g.Stats().Auths == n })
			used := memInUse() - before
			if os.Getenv("MAGPIE_MEMDETAIL") != "" {
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				b.Logf("heap %d stack %d goroutines %d", m.HeapInuse, m.StackInuse, runtime.NumGoroutine())
			}
			perConn := used/n - baseline + baseline/2
			b.ReportMetric(perConn, "bytes/conn")
			b.ReportMetric(float64(rss()-beforeRSS)/n, "rss-bytes/conn(incl.clients)")
			for range b.N {
			}
		})
	}
}

func memInUse() float64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapInuse + m.StackInuse)
}

func rss() int64 {
	runtime.GC()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// dialTCPRaw logs in over TCP with no client goroutine or buffer left over.
func dialTCPRaw(b testing.TB, addr, user string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	c.Write(frameOf(authEnv(1, "good-"+user)))
	var hdr [4]byte
	io.ReadFull(c, hdr[:])
	io.CopyN(io.Discard, c, int64(hdr[0])<<24|int64(hdr[1])<<16|int64(hdr[2])<<8|int64(hdr[3]))
	return c
}

// dialWSRaw does the WebSocket handshake and login by hand, so the client
// side is a bare socket like in the baseline.
func dialWSRaw(b testing.TB, addr, user string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(c, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: %s\r\n\r\n", addr, wire.SubprotocolProto)
	var last [4]byte
	for string(last[:]) != "\r\n\r\n" {
		var x [1]byte
		if _, err := c.Read(x[:]); err != nil {
			b.Fatal(err)
		}
		copy(last[:], append(last[1:], x[0]))
	}
	payload, _ := proto.Marshal(authEnv(1, "good-"+user))
	// Binary frame, masked with a zero key (payload unchanged), < 126 bytes.
	c.Write(append([]byte{0x82, 0x80 | byte(len(payload)), 0, 0, 0, 0}, payload...))
	var hdr [2]byte
	io.ReadFull(c, hdr[:])
	io.CopyN(io.Discard, c, int64(hdr[1]&0x7f))
	return c
}

// BenchmarkDecodeJSON is a JSON text frame's decode with the strict check
// (jsoncheck, then protojson) next to protojson alone, what it cost before.
func BenchmarkDecodeJSON(b *testing.B) {
	frame := []byte(`{"id":"12","send":{"to_user":"bob","client_msg_id":"w-0123456789abcdef","text":"Hello Bob, how are you today? ☀"}}`)
	b.Run("checked", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeEnvelope(encJSON, frame); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := jsonIn.Unmarshal(frame, new(magpiepb.Envelope)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
