package client

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// writeTimeout bounds one frame write; a peer that does not read for this
// long is treated as gone.
const writeTimeout = 10 * time.Second

// transport carries Envelopes over one network connection. Read is called
// by one goroutine and Write by one other goroutine; Close may be called
// from anywhere, more than once, and unblocks both.
type transport interface {
	Read() (*magpiepb.Envelope, error)
	// Write sends envs in order. TCP writes them with one syscall: a
	// burst of sends (pipelined requests, several Send callers) costs
	// one write, not one per frame.
	Write(envs ...*magpiepb.Envelope) error
	SetReadDeadline(time.Time) error
	Close() error
}

var (
	_ transport = (*tcpTransport)(nil)
	_ transport = (*wsTransport)(nil)
)

// handshakeTimeout bounds a TLS handshake with a TCP gateway (the
// WebSocket dialer's HandshakeTimeout covers its own).
const handshakeTimeout = 10 * time.Second

// splitTCPAddr reads an advertised TCP gateway address (docs/protocol.md):
// "tls://host:port" is TLS, "host:port" or "tcp://host:port" plain.
func splitTCPAddr(addr string) (hostport string, useTLS bool, err error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		return addr, false, nil
	}
	switch scheme {
	case "tls":
		return rest, true, nil
	case "tcp":
		return rest, false, nil
	}
	return "", false, fmt.Errorf("magpie: TCP gateway address %q: unknown scheme %q (want tls:// or none)", addr, scheme)
}

// dialTransport connects to the gateway over kind ("tcp" or "ws"); tlsConf
// is Options.TLS, used when the address says TLS.
func dialTransport(ctx context.Context, kind, tcpAddr, wsURL string, tlsConf *tls.Config) (transport, error) {
	switch kind {
	case "", "tcp":
		if tcpAddr == "" {
			return nil, errors.New("magpie: the server offered no TCP gateway")
		}
		hostport, useTLS, err := splitTCPAddr(tcpAddr)
		if err != nil {
			return nil, err
		}
		var conn net.Conn
		if useTLS {
			hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
			d := tls.Dialer{Config: tlsClientConfig(tlsConf, hostport)}
			conn, err = d.DialContext(hctx, "tcp", hostport)
		} else {
			var d net.Dialer
			conn, err = d.DialContext(ctx, "tcp", hostport)
		}
		if err != nil {
			return nil, err
		}
		return &tcpTransport{conn: conn, r: wire.NewReader(conn, 4096, wire.MaxFrame)}, nil
	case "ws":
		if wsURL == "" {
			return nil, errors.New("magpie: the server offered no WebSocket gateway")
		}
		d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolProto}, HandshakeTimeout: 10 * time.Second,
			TLSClientConfig: tlsConf} // used for wss:// only; the library fills in ServerName
		conn, resp, err := d.DialContext(ctx, wsURL, nil)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return nil, err
		}
		conn.SetReadLimit(wire.MaxFrame)
		return &wsTransport{conn: conn}, nil
	}
	return nil, fmt.Errorf("magpie: unknown transport %q (want tcp or ws)", kind)
}

// tlsClientConfig is a copy of c (nil: defaults, the system roots) naming
// the host of hostport unless c names one.
func tlsClientConfig(c *tls.Config, hostport string) *tls.Config {
	if c == nil {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	} else {
		c = c.Clone()
	}
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(hostport); err == nil {
			c.ServerName = host
		}
	}
	return c
}

// httpClientFor is the HTTP client of a Client without Options.HTTPClient.
func httpClientFor(c *tls.Config) *http.Client {
	if c == nil {
		return http.DefaultClient
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = c.Clone()
	return &http.Client{Transport: tr}
}

type tcpTransport struct {
	conn net.Conn
	r    *wire.Reader
	buf  []byte        // owned by the writer
	wdl  writeDeadline // owned by the writer
}

func (t *tcpTransport) Read() (*magpiepb.Envelope, error) {
	b, err := t.r.ReadFrame()
	if err != nil {
		return nil, err
	}
	env := new(magpiepb.Envelope)
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, fmt.Errorf("magpie: undecodable frame: %w", err)
	}
	return env, nil
}

func (t *tcpTransport) Write(envs ...*magpiepb.Envelope) error {
	buf := t.buf[:0]
	for _, env := range envs {
		var err error
		if buf, err = appendFrame(buf, env); err != nil {
			return err
		}
	}
	t.wdl.set(t.conn)
	_, err := t.conn.Write(buf)
	if cap(buf) > maxKeptWriteBuf {
		buf = nil // a large burst's buffer is not kept for the connection's life
	}
	t.buf = buf
	return err
}

// maxKeptWriteBuf is the largest write buffer a TCP transport keeps
// between writes.
const maxKeptWriteBuf = 64 << 10

// appendFrame appends env to dst as one length-prefixed frame, encoded in
// place (no intermediate buffer).
func appendFrame(dst []byte, env *magpiepb.Envelope) ([]byte, error) {
	n := proto.Size(env)
	if n > wire.MaxFrame {
		return dst, fmt.Errorf("magpie: frame of %d bytes exceeds the limit of %d", n, wire.MaxFrame)
	}
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	// Size cached the sizes of env's parts; the marshal reuses them.
	return proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(dst, env)
}

// writeDeadline moves a connection's write deadline only when the one set
// is more than an eighth of writeTimeout old, so the effective bound on a
// write is between 7/8 of writeTimeout and all of it, and a busy
// connection does not reset a runtime timer for every write.
type writeDeadline struct{ at time.Time }

func (w *writeDeadline) set(conn net.Conn) {
	now := time.Now()
	if now.Sub(w.at) < writeTimeout/8 {
		return
	}
	if conn.SetWriteDeadline(now.Add(writeTimeout)) == nil {
		w.at = now
	}
}

func (t *tcpTransport) SetReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }
func (t *tcpTransport) Close() error                      { return t.conn.Close() }

type wsTransport struct {
	conn      *websocket.Conn
	closeOnce sync.Once
}

func (t *wsTransport) Read() (*magpiepb.Envelope, error) {
	for {
		mt, b, err := t.conn.ReadMessage()
		if err != nil {
			return nil, err
		}
		if mt != websocket.BinaryMessage {
			continue // we asked for protobuf; ignore anything else
		}
		env := new(magpiepb.Envelope)
		if err := proto.Unmarshal(b, env); err != nil {
			return nil, fmt.Errorf("magpie: undecodable frame: %w", err)
		}
		return env, nil
	}
}

func (t *wsTransport) Write(envs ...*magpiepb.Envelope) error {
	// gorilla applies its own deadline field to every frame it writes;
	// setting it is a store, not a timer update.
	t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, env := range envs {
		b, err := proto.Marshal(env)
		if err != nil {
			return err
		}
		if err := t.conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
			return err
		}
	}
	return nil
}

func (t *wsTransport) SetReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }

func (t *wsTransport) Close() error {
	var err error
	t.closeOnce.Do(func() { err = t.conn.Close() })
	return err
}
