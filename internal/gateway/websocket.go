package gateway

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/websocket"

	"github.com/magpie-im/magpie/proto/wire"
)

// gorilla/websocket does the handshake only (subprotocol, Origin, the
// answers to bad upgrades); after it the connection is read and written
// here (wsframe.go), so an idle WebSocket parks like a TCP connection and
// holds no gorilla state or buffers.
const wsHandshakeBuffer = 128 // gorilla's, used for nothing after the handshake

// WebSocketHandler returns the handler the caller mounts at /v1/ws. The
// subprotocol chooses the encoding: wire.SubprotocolProto (binary messages,
// protobuf) or wire.SubprotocolJSON (text messages, protojson); none means
// JSON. A request offering only unknown subprotocols gets 400, a foreign
// Origin 403, a draining gateway 503. The HTTP server's own header and idle
// timeouts are the caller's to set.
func (g *Gateway) WebSocketHandler() http.Handler {
	up := &websocket.Upgrader{
		HandshakeTimeout: g.cfg.WriteTimeout,
		ReadBufferSize:   wsHandshakeBuffer,
		WriteBufferSize:  wsHandshakeBuffer,
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
		c, err := up.Upgrade(w, r, hdr)
		if err != nil {
			return // Upgrade answered the client
		}
		// Nothing was read past the handshake (gorilla refuses a client
		// that sent more): the next byte on the socket is a frame's.
		t := &wsTransport{conn: c.NetConn(), op: wsBinary}
		if enc == encJSON {
			t.op = wsText
		}
		// The reader is a new goroutine with a small stack; this handler's
		// goroutine, grown by net/http, returns now.
		if !g.startSession(t, enc, WebSocket) {
			t.close()
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
