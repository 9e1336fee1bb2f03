package gateway

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// fakeLogic accepts tokens "good-<user>", answers Send with a SendAck and
// any other request with Ok. With hold set, Forward answers only when
// release is called.
type fakeLogic struct {
	mu      sync.Mutex
	hold    bool
	held    []func()
	down    bool // Forward fails
	pending sync.WaitGroup

	expiresMs   int64         // set on every ConnRef: the token's expiry
	authEntered chan struct{} // if set, Authenticate reports it started
	authBlock   chan struct{} // if set, Authenticate waits for it to close
}

var _ Logic = (*fakeLogic)(nil)

func userID(name string) int64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int64(h.Sum32())
}

func (f *fakeLogic) Authenticate(_ context.Context, req *clusterpb.AuthRequest) (*clusterpb.AuthReply, error) {
	f.mu.Lock()
	entered, block, expires := f.authEntered, f.authBlock, f.expiresMs
	f.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		<-block
	}
	user, ok := strings.CutPrefix(req.Token, "good-")
	if !ok || user == "" {
		env, _ := proto.Marshal(errorEnvelope(0, wire.CodeUnauthenticated, "bad token", 0))
		return &clusterpb.AuthReply{Envelope: env}, nil
	}
	ref := proto.CloneOf(req.Conn)
	ref.UserId, ref.SessionId, ref.Device, ref.ExpiresMs = userID(user), "s-"+user, "dev", expires
	env, _ := proto.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_AuthOk{AuthOk: &magpiepb.AuthOK{
		UserId: ref.UserId, Username: user, SessionId: ref.SessionId, Device: "dev",
	}}})
	return &clusterpb.AuthReply{Envelope: env, Conn: ref}, nil
}

func (f *fakeLogic) Forward(req *clusterpb.Request, done func([]byte, error)) {
	env := new(magpiepb.Envelope)
	if err := proto.Unmarshal(req.Envelope, env); err != nil {
		panic("gateway forwarded an undecodable envelope: " + err.Error())
	}
	out := &magpiepb.Envelope{Id: env.Id, Body: &magpiepb.Envelope_Ok{Ok: &magpiepb.Ok{}}}
	if s := env.GetSend(); s != nil {
		out.Body = &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{ClientMsgId: s.ClientMsgId, Seq: env.Id}}
	}
	b, _ := proto.Marshal(out)
	f.mu.Lock()
	defer f.mu.Unlock()
	answer := func() {
		if f.down {
			done(nil, errors.New("logic down"))
		} else {
			done(b, nil)
		}
	}
	if f.hold {
		f.held = append(f.held, answer)
		return
	}
	f.pending.Add(1)
	go func() { defer f.pending.Done(); answer() }()
}

func (f *fakeLogic) release() {
	f.mu.Lock()
	held := f.held
	f.held, f.hold = nil, false
	f.mu.Unlock()
	for _, h := range held {
		h()
	}
}

type fakePresence struct {
	mu           sync.Mutex
	connected    map[uint64]int
	disconnected map[uint64]int
	block        chan struct{} // if set, Connected waits for it to close
	entered      chan uint64   // if set, Connected reports the conn id first
}

var _ Presence = (*fakePresence)(nil)

func newFakePresence() *fakePresence {
	return &fakePresence{connected: map[uint64]int{}, disconnected: map[uint64]int{}}
}

func (p *fakePresence) Connected(_ context.Context, c *clusterpb.ConnRef) error {
	p.mu.Lock()
	block, entered := p.block, p.entered
	p.mu.Unlock()
	if entered != nil {
		entered <- c.Conn
	}
	if block != nil {
		<-block
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected[c.Conn]++
	return nil
}

func (p *fakePresence) Disconnected(_ context.Context, c *clusterpb.ConnRef) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.disconnected[c.Conn]++
	return nil
}

func (p *fakePresence) counts(conn uint64) (int, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected[conn], p.disconnected[conn]
}

// testServer is a gateway serving TCP and WebSocket on loopback.
type testServer struct {
	g        *Gateway
	logic    *fakeLogic
	presence *fakePresence
	tcpAddr  string
	wsURL    string
	http     *httptest.Server
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, &fakeLogic{}, nil)
}

// startServerWith starts a gateway on logic, or on backend (which must
// answer through logic for the cleanup's release) when backend is set.
func startServerWith(t testing.TB, cfg Config, logic *fakeLogic, backend Logic) *testServer {
	t.Helper()
	checkLeaks(t)
	if cfg.ID == "" {
		cfg.ID = "gw-test"
	}
	if backend == nil {
		backend = logic
	}
	ts := &testServer{logic: logic, presence: newFakePresence()}
	ts.g = New(cfg, backend, ts.presence, testLogger(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.tcpAddr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- ts.g.ServeTCP(ln) }()
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", ts.g.WebSocketHandler())
	ts.http = httptest.NewServer(mux)
	ts.wsURL = "ws" + strings.TrimPrefix(ts.http.URL, "http") + "/v1/ws"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ts.g.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrClosed) {
			t.Errorf("ServeTCP returned %v, want ErrClosed", err)
		}
		ts.http.Close()
		ts.logic.release()
		ts.logic.pending.Wait()
	})
	return ts
}

// checkLeaks fails the test if goroutines started during it outlive it
// (its cleanup runs after every cleanup registered later).
func checkLeaks(t testing.TB) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
	})
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			if strings.Contains(what, "goroutines") {
				buf := make([]byte, 1<<20)
				t.Logf("%s", buf[:runtime.Stack(buf, true)])
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling, not a timing assumption
	}
}

// client speaks the protocol over TCP or WebSocket (proto or JSON).
type client struct {
	t    testing.TB
	conn net.Conn        // TCP
	r    *wire.Reader    // TCP
	ws   *websocket.Conn // WebSocket
	json bool            // WebSocket JSON
	nc   net.Conn        // the socket, either way
}

type clientKind int

const (
	kindTCP clientKind = iota
	kindWSProto
	kindWSJSON
)

func (k clientKind) String() string { return [...]string{"tcp", "ws-proto", "ws-json"}[k] }

func (ts *testServer) dial(t testing.TB, kind clientKind) *client {
	t.Helper()
	switch kind {
	case kindTCP:
		c, err := net.Dial("tcp", ts.tcpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return &client{t: t, conn: c, nc: c, r: wire.NewReader(c, 0, 0)}
	default:
		d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolProto}}
		if kind == kindWSJSON {
			d.Subprotocols = []string{wire.SubprotocolJSON}
		}
		ws, resp, err := d.Dial(ts.wsURL, nil)
		if err != nil {
			t.Fatalf("dial %s: %v", kind, err)
		}
		resp.Body.Close()
		t.Cleanup(func() { ws.Close() })
		return &client{t: t, ws: ws, nc: ws.UnderlyingConn(), json: kind == kindWSJSON}
	}
}

func (c *client) sendRaw(b []byte) {
	c.t.Helper()
	var err error
	switch {
	case c.ws == nil:
		_, err = c.conn.Write(b)
	case c.json:
		err = c.ws.WriteMessage(websocket.TextMessage, b)
	default:
		err = c.ws.WriteMessage(websocket.BinaryMessage, b)
	}
	if err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) send(env *magpiepb.Envelope) {
	c.t.Helper()
	if c.json {
		b, err := protojson.Marshal(env)
		if err != nil {
			c.t.Fatal(err)
		}
		c.sendRaw(b)
		return
	}
	b, err := proto.Marshal(env)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.ws == nil {
		b = wire.AppendFrame(nil, b)
	}
	c.sendRaw(b)
}

// next returns the next envelope, or an error (io.EOF and the like) once
// the server closed.
func (c *client) next() (*magpiepb.Envelope, error) {
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	var err error
	if c.ws == nil {
		b, err = c.r.ReadFrame()
	} else {
		var mt int
		mt, b, err = c.ws.ReadMessage()
		if err == nil && (mt == websocket.TextMessage) != c.json {
			c.t.Fatalf("got message type %d on a json=%v connection", mt, c.json)
		}
	}
	if err != nil {
		return nil, err
	}
	env := new(magpiepb.Envelope)
	if c.json {
		err = protojson.Unmarshal(b, env)
	} else {
		err = proto.Unmarshal(b, env)
	}
	if err != nil {
		c.t.Fatalf("undecodable frame from server: %v (%q)", err, b)
	}
	return env, nil
}

func (c *client) read() *magpiepb.Envelope {
	c.t.Helper()
	env, err := c.next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return env
}

// expectClosed reads until the server closes, failing on any frame.
func (c *client) expectClosed() {
	c.t.Helper()
	env, err := c.next()
	if err == nil {
		c.t.Fatalf("got %v, want the connection closed", env)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		c.t.Fatalf("read: %v", err)
	}
	c.nc.Close() // as a client does when the server went away
}

func (c *client) expectError(id uint64, code wire.Code) *magpiepb.Error {
	c.t.Helper()
	env := c.read()
	e := env.GetError()
	if e == nil || wire.Code(e.Code) != code || env.Id != id {
		c.t.Fatalf("got %v, want Error{%v} for id %d", env, code, id)
	}
	return e
}

func (c *client) expectKick(code wire.Code) *magpiepb.Kick {
	c.t.Helper()
	env := c.read()
	k := env.GetKick()
	if k == nil || wire.Code(k.Code) != code {
		c.t.Fatalf("got %v, want Kick{%v}", env, code)
	}
	// The code table's action decides the flag: only Reconnect and Retry
	// codes say "connect again" (Relogin ones: log in first).
	if want := code.Action() == wire.Reconnect || code.Action() == wire.Retry; k.Reconnect != want {
		c.t.Fatalf("got %v, want reconnect %v as %v's action says", k, want, code)
	}
	return k
}

func authEnv(id uint64, token string) *magpiepb.Envelope {
	return &magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{Token: token}}}
}

// login authenticates as user and returns the AuthOK.
func (c *client) login(user string) *magpiepb.AuthOK {
	c.t.Helper()
	c.send(authEnv(1, "good-"+user))
	env := c.read()
	ok := env.GetAuthOk()
	if ok == nil || env.Id != 1 {
		c.t.Fatalf("got %v, want AuthOK for id 1", env)
	}
	return ok
}

func pingEnv(id uint64, at int64) *magpiepb.Envelope {
	return &magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: at}}}
}

func sendEnv(id uint64, text string) *magpiepb.Envelope {
	return &magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", ClientMsgId: "m1", Text: text}}}
}
