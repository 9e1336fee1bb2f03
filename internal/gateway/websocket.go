package gateway

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/magpie-im/magpie/proto/wire"
)

const (
	wsReadBuffer  = 256  // gorilla's minimum is 125 (a control frame)
	wsWriteBuffer = 1024 // pooled: held only while a message is written
)

// wsWriteBufs is shared by every WebSocket connection of every gateway.
var wsWriteBufs websocket.BufferPool = &sync.Pool{}

// WebSocketHandler returns the handler the caller mounts at /v1/ws. The
// subprotocol chooses the encoding: wire.SubprotocolProto (binary messages,
// protobuf) or wire.SubprotocolJSON (text messages, protojson); none means
// JSON. A request offering only unknown subprotocols gets 400, a foreign
// Origin 403, a draining gateway 503. The HTTP server's own header and idle
// timeouts are the caller's to set.
func (g *Gateway) WebSocketHandler() http.Handler {
	up := &websocket.Upgrader{
		HandshakeTimeout: g.cfg.WriteTimeout,
		ReadBufferSize:   wsReadBuffer,
		WriteBufferSize:  wsWriteBuffer,
		WriteBufferPool:  wsWriteBufs,
		CheckOrigin:      func(*http.Request) bool { return true }, // checked before Upgrade
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.originAllowed(r) {
			http.Error(w, "origin not allowed", http.StatusForbidden)
			return
		}
		enc, proto, ok := chooseSubprotocol(websocket.Subprotocols(r))
		if !ok {
			http.Error(w, "unsupported subprotocol; use "+wire.SubprotocolProto+" or "+wire.SubprotocolJSON, http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		draining := g.draining
		g.mu.Unlock()
		if draining {
			http.Error(w, "gateway draining", http.StatusServiceUnavailable)
			return
		}
		if !g.waitAccept(g.cfg.AuthTimeout) {
			g.stats.acceptRefused.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many new connections; retry", http.StatusServiceUnavailable)
			return
		}
		var hdr http.Header
		if proto != "" {
			hdr = http.Header{"Sec-Websocket-Protocol": {proto}}
		}
		lw := &limitHijacker{ResponseWriter: w, max: wire.MaxFrame}
		c, err := up.Upgrade(lw, r, hdr)
		if err != nil {
			return // Upgrade answered the client
		}
		t := &wsTransport{c: c, raw: lw.raw, msgType: websocket.BinaryMessage}
		if enc == encJSON {
			t.msgType = websocket.TextMessage
		}
		// The reader is a new goroutine with a small stack; this handler's
		// goroutine, grown by net/http, returns now.
		if !g.startSession(t, enc, WebSocket) {
			c.Close()
		}
	})
}

// chooseSubprotocol picks the client's first known subprotocol.
func chooseSubprotocol(offered []string) (encoding, string, bool) {
	if len(offered) == 0 {
		return encJSON, "", true
	}
	for _, p := range offered {
		switch p {
		case wire.SubprotocolProto:
			return encProto, p, true
		case wire.SubprotocolJSON:
			return encJSON, p, true
		}
	}
	return 0, "", false
}

// originAllowed: requests without Origin (not from a browser) pass; with
// no allowlist the Origin's host must equal the request's Host.
func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(g.cfg.AllowedOrigins) == 0 {
		return strings.EqualFold(u.Host, r.Host)
	}
	for _, a := range g.cfg.AllowedOrigins {
		if a == "*" || strings.EqualFold(a, origin) || strings.EqualFold(a, u.Host) {
			return true
		}
	}
	return false
}

// wsTransport carries one Envelope per WebSocket message.
type wsTransport struct {
	c       *websocket.Conn
	raw     net.Conn // under c's frameLimitConn (wslimit.go)
	msgType int      // BinaryMessage (protobuf) or TextMessage (JSON)
	buf     []byte   // reader only; released after large messages
}

var _ transport = (*wsTransport)(nil)

func (t *wsTransport) setReadDeadline(d time.Time) error { return t.c.SetReadDeadline(d) }
func (t *wsTransport) close()                            { t.c.Close() }
func (t *wsTransport) discard()                          { discardInput(t.raw) }

// readFrame reads one message of at most wire.MaxFrame bytes. A frame
// header announcing more fails at once in frameLimitConn (not with
// SetReadLimit, which would send its own close frame before the gateway's
// Kick); the count below is a second guard.
func (t *wsTransport) readFrame() ([]byte, error) {
	mt, r, err := t.c.NextReader()
	if err != nil {
		return nil, err
	}
	if mt != t.msgType {
		return nil, errWrongType
	}
	buf := t.buf[:0]
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(max(512, 2*cap(buf)), wire.MaxFrame+1))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > wire.MaxFrame {
			t.buf = nil
			return nil, errTooLarge
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	t.buf = buf
	if cap(buf) > 4096 {
		t.buf = nil
	}
	return buf, nil
}

func (t *wsTransport) writeFrames(frames [][]byte, deadline time.Time) error {
	if err := t.c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	for _, f := range frames {
		if err := t.c.WriteMessage(t.msgType, f); err != nil {
			return err
		}
	}
	return nil
}

// shutdownWrite sends the close frame: 1000 for a plain close, 1009 for a
// frame too large, 1001 when the gateway goes away, 4000+code otherwise.
func (t *wsTransport) shutdownWrite(code wire.Code, deadline time.Time) {
	ws := websocket.CloseNormalClosure
	switch code {
	case 0:
	case wire.CodeTooLarge:
		ws = websocket.CloseMessageTooBig
	case wire.CodeDraining, wire.CodeServerShutdown:
		ws = websocket.CloseGoingAway
	default:
		ws = 4000 + int(code)
	}
	t.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ws, ""), deadline)
	if tc, ok := t.raw.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
	}
}
