package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// rawConn is a minimal protocol connection for W1: the SDK keeps more
// state per connection than an idle-connection test needs, and cannot bind
// a source address. One goroutine reads (readLoop); one other goroutine
// writes (the pinger). Close may be called from anywhere.
type rawConn struct {
	tcp net.Conn // a *net.TCPConn, or a *tls.Conn over one
	r   *wire.Reader
	ws  *websocket.Conn
}

// dialRaw connects to the gateway from src (nil: any) over transport;
// tlsConf (nil: system roots) checks a tls:// or wss:// gateway.
func dialRaw(ctx context.Context, transport string, lg login, src net.IP, tlsConf *tls.Config) (*rawConn, error) {
	return dialRawSize(ctx, transport, lg, src, tlsConf, 256)
}

// dialRawSize is dialRaw with read buffers of bufSize bytes (and WebSocket
// write buffers of that size): W1's idle connections keep them small, a
// busy W2 connection reads many frames per syscall.
func dialRawSize(ctx context.Context, transport string, lg login, src net.IP, tlsConf *tls.Config, bufSize int) (*rawConn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	switch transport {
	case "tcp":
		addr, useTLS := strings.CutPrefix(lg.Gateway.TCP, "tls://")
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if useTLS {
			cfg := &tls.Config{MinVersion: tls.VersionTLS12}
			if tlsConf != nil {
				cfg = tlsConf.Clone()
			}
			if cfg.ServerName == "" {
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			tc := tls.Client(c, cfg)
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				c.Close()
				return nil, err
			}
			c = tc
		}
		return &rawConn{tcp: c, r: wire.NewReader(c, bufSize, wire.MaxFrame)}, nil
	case "ws":
		wd := websocket.Dialer{
			NetDialContext:   d.DialContext,
			Subprotocols:     []string{wire.SubprotocolProto},
			HandshakeTimeout: 10 * time.Second,
			ReadBufferSize:   bufSize,
			WriteBufferSize:  bufSize,
			TLSClientConfig:  tlsConf, // wss:// only
		}
		c, resp, err := wd.DialContext(ctx, lg.Gateway.WS, http.Header{})
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(wire.MaxFrame)
		return &rawConn{ws: c}, nil
	}
	return nil, fmt.Errorf("bench: unknown transport %q", transport)
}

func (c *rawConn) write(env *magpiepb.Envelope) error {
	b, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	if c.ws != nil {
		c.ws.SetWriteDeadline(deadline)
		return c.ws.WriteMessage(websocket.BinaryMessage, b)
	}
	c.tcp.SetWriteDeadline(deadline)
	_, err = c.tcp.Write(wire.AppendFrame(nil, b))
	return err
}

func (c *rawConn) read() (*magpiepb.Envelope, error) {
	var b []byte
	if c.ws != nil {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return nil, err
		}
		if mt != websocket.BinaryMessage {
			return nil, errors.New("bench: unexpected text frame")
		}
		b = data
	} else {
		data, err := c.r.ReadFrame()
		if err != nil {
			return nil, err
		}
		b = data
	}
	env := new(magpiepb.Envelope)
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, err
	}
	return env, nil
}

func (c *rawConn) setReadDeadline(t time.Time) {
	if c.ws != nil {
		c.ws.SetReadDeadline(t)
	} else {
		c.tcp.SetReadDeadline(t)
	}
}

func (c *rawConn) close() {
	if c.ws != nil {
		c.ws.Close()
	} else {
		c.tcp.Close()
	}
}

// authenticate sends auth and waits for auth_ok; it returns the server's
// heartbeat interval.
func (c *rawConn) authenticate(token string) (time.Duration, error) {
	if err := c.write(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: token}}}); err != nil {
		return 0, err
	}
	c.setReadDeadline(time.Now().Add(10 * time.Second))
	defer c.setReadDeadline(time.Time{})
	for {
		env, err := c.read()
		if err != nil {
			return 0, err
		}
		switch b := env.Body.(type) {
		case *magpiepb.Envelope_AuthOk:
			return time.Duration(b.AuthOk.GetHeartbeatSeconds()) * time.Second, nil
		case *magpiepb.Envelope_Error:
			return 0, fmt.Errorf("auth refused: code %d (%s): %s", b.Error.GetCode(), wire.Code(b.Error.GetCode()), b.Error.GetMessage())
		case *magpiepb.Envelope_Kick:
			return 0, fmt.Errorf("kicked during auth: code %d (%s): %s", b.Kick.GetCode(), wire.Code(b.Kick.GetCode()), b.Kick.GetReason())
		}
	}
}
