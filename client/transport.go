package client

import (
	"context"
	"errors"
	"fmt"
	"net"
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
	Write(*magpiepb.Envelope) error
	SetReadDeadline(time.Time) error
	Close() error
}

var (
	_ transport = (*tcpTransport)(nil)
	_ transport = (*wsTransport)(nil)
)

func dialTransport(ctx context.Context, kind, tcpAddr, wsURL string) (transport, error) {
	switch kind {
	case "", "tcp":
		if tcpAddr == "" {
			return nil, errors.New("magpie: the server offered no TCP gateway")
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", tcpAddr)
		if err != nil {
			return nil, err
		}
		return &tcpTransport{conn: conn, r: wire.NewReader(conn, 4096, wire.MaxFrame)}, nil
	case "ws":
		if wsURL == "" {
			return nil, errors.New("magpie: the server offered no WebSocket gateway")
		}
		d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolProto}, HandshakeTimeout: 10 * time.Second}
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

type tcpTransport struct {
	conn net.Conn
	r    *wire.Reader
	buf  []byte // owned by the writer
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

func (t *tcpTransport) Write(env *magpiepb.Envelope) error {
	b, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	t.buf = wire.AppendFrame(t.buf[:0], b)
	t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = t.conn.Write(t.buf)
	return err
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

func (t *wsTransport) Write(env *magpiepb.Envelope) error {
	b, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	t.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	return t.conn.WriteMessage(websocket.BinaryMessage, b)
}

func (t *wsTransport) SetReadDeadline(d time.Time) error { return t.conn.SetReadDeadline(d) }

func (t *wsTransport) Close() error {
	var err error
	t.closeOnce.Do(func() { err = t.conn.Close() })
	return err
}
