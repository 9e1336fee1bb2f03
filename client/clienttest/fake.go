// Package clienttest is a small in-process Magpie server for tests of the
// SDK and the terminal client. It speaks the real protocol (HTTP JSON API,
// TCP frames and WebSocket) over loopback, keeps everything in memory, and
// has hooks to misbehave: drop live pushes, drop a connection before an
// ack, refuse tokens, kick, route logins to another TCP gateway and kill
// one (AddGateway, RouteLogins, KillGateway). It also knows groups (events
// in the stream), recall and edit, broadcast and transient pushes, files,
// friends and blocks, and conversation flags, in their simplest form (no
// history windows, mutes, size limits or recall windows). It checks little
// and is not a reference server.
//
// All methods are safe for concurrent use.
package clienttest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// Server is the fake. URL is the HTTP base URL to give the SDK.
type Server struct {
	URL string

	hs *httptest.Server
	ln net.Listener
	wg sync.WaitGroup

	mu            sync.Mutex
	heartbeat     uint32
	users         map[string]*user
	tokens        map[string]string // token -> username
	convs         map[string]*conv
	conns         map[*conn]bool
	logins        int
	routes        int            // GET /v1/gateway calls
	attempts      map[string]int // client_msg_id -> send requests seen
	dropPush      func(to string, m *magpiepb.Message) bool
	dropAck       func(clientMsgID string, attempt int) bool
	mute          bool // do not answer pings
	closed        bool
	nextGroup     int
	refuseChanges bool // answer recall and edit frames with unknown_command
	files         map[string]*file
	friends       map[string]bool         // "a/b" with a < b
	requests      map[string]bool         // "from/to"
	blocks        map[string]bool         // "blocker/blocked"
	gateways      map[string]net.Listener // TCP gateways added by AddGateway, by address
	loginGateway  string                  // the TCP gateway logins name; "" is ln
	loginDevices  []string                // the device of each successful login
}

type user struct {
	id       int64
	name     string
	password string
}

// conv is a private conversation ("p:a:b") or a group ("g_<n>").
type conv struct {
	id        string
	name      string            // groups
	members   []string          // private: the two users; groups: the current members
	roles     map[string]string // groups: member -> owner, admin or member
	policy    string            // groups: invite or open
	createdAt int64
	msgs      []*magpiepb.Message
	delivered map[string]uint64
	read      map[string]uint64
	byMsgID   map[string]*magpiepb.Message // sender + "/" + client_msg_id
	flags     map[string][2]bool           // user -> pinned, muted
}

func newConv(id string, members ...string) *conv {
	return &conv{id: id, members: members, roles: map[string]string{}, policy: "invite",
		createdAt: time.Now().UnixMilli(), delivered: map[string]uint64{}, read: map[string]uint64{},
		byMsgID: map[string]*magpiepb.Message{}, flags: map[string][2]bool{}}
}

func (cv *conv) group() bool { return strings.HasPrefix(cv.id, "g_") }

func (cv *conv) has(name string) bool { return slices.Contains(cv.members, name) }

type conn struct {
	user, device string
	gateway      string // the TCP gateway's address; "" for WebSocket
	wmu          sync.Mutex
	write        func([]byte) error
	close        func()
}

// New starts a fake server on loopback ports; it stops at the end of the test.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		heartbeat: 30,
		users:     map[string]*user{},
		tokens:    map[string]string{},
		convs:     map[string]*conv{},
		conns:     map[*conn]bool{},
		attempts:  map[string]int{},
		files:     map[string]*file{},
		friends:   map[string]bool{},
		requests:  map[string]bool{},
		blocks:    map[string]bool{},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.hs = httptest.NewServer(s.httpHandler())
	s.URL = s.hs.URL
	s.wg.Add(1)
	go s.acceptTCP(ln)
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and drops every connection.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	gws := s.gateways
	s.mu.Unlock()
	s.ln.Close()
	for _, ln := range gws {
		ln.Close()
	}
	s.DropConnections()
	s.hs.CloseClientConnections()
	s.hs.Close()
	s.wg.Wait()
}

// AddUser creates an account.
func (s *Server) AddUser(name, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[name] = &user{id: int64(len(s.users) + 1), name: name, password: password}
}

// SetHeartbeat sets heartbeat_seconds for new connections.
func (s *Server) SetHeartbeat(seconds uint32) { s.mu.Lock(); s.heartbeat = seconds; s.mu.Unlock() }

// SetDropPush makes live pushes for which f returns true vanish.
func (s *Server) SetDropPush(f func(to string, m *magpiepb.Message) bool) {
	s.mu.Lock()
	s.dropPush = f
	s.mu.Unlock()
}

// SetDropAck makes the server store a send but close the sender's
// connection instead of acking when f returns true. attempt counts the send
// requests seen with that client_msg_id, from 1.
func (s *Server) SetDropAck(f func(clientMsgID string, attempt int) bool) {
	s.mu.Lock()
	s.dropAck = f
	s.mu.Unlock()
}

// SetRefuseChanges makes the long connection answer recall and edit with
// unknown_command, like a gateway that does not forward them; the HTTP API
// still takes them.
func (s *Server) SetRefuseChanges(refuse bool) { s.mu.Lock(); s.refuseChanges = refuse; s.mu.Unlock() }

// SetMute makes the server stop answering pings, like a dead peer whose
// TCP connection has not noticed yet.
func (s *Server) SetMute(mute bool) { s.mu.Lock(); s.mute = mute; s.mu.Unlock() }

// Logins counts successful HTTP logins.
func (s *Server) Logins() int { s.mu.Lock(); defer s.mu.Unlock(); return s.logins }

// Routes counts GET /v1/gateway calls (a client moving on without a login).
func (s *Server) Routes() int { s.mu.Lock(); defer s.mu.Unlock(); return s.routes }

// SendAttempts counts send requests seen with clientMsgID.
func (s *Server) SendAttempts(clientMsgID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[clientMsgID]
}

// RevokeTokens makes every issued token invalid.
func (s *Server) RevokeTokens() { s.mu.Lock(); clear(s.tokens); s.mu.Unlock() }

// Online reports how many connections user has.
func (s *Server) Online(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.user == name {
			n++
		}
	}
	return n
}

// DropConnections closes every long connection without a word.
func (s *Server) DropConnections() {
	s.mu.Lock()
	var cs []*conn
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.close()
	}
}

// Kick sends a kick to every connection of name and closes them; its
// reconnect flag follows code's action, as the real server's does.
func (s *Server) Kick(name string, code wire.Code) {
	env := &magpiepb.Envelope{Body: &magpiepb.Envelope_Kick{Kick: &magpiepb.Kick{Code: uint32(code), Reason: code.String(), Reconnect: code.KickReconnect()}}}
	for _, c := range s.connsOf(name, nil) {
		c.send(env)
		c.close()
	}
}

// Store stores a message from one user to another without pushing it.
func (s *Server) Store(from, to, text string) *magpiepb.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, _ := s.storeLocked(from, to, text, randomID())
	return m
}

// Push sends m live to every connection of name, as the receiver sees it.
func (s *Server) Push(name string, m *magpiepb.Message) {
	s.mu.Lock()
	v := s.viewLocked(m, name)
	s.mu.Unlock()
	for _, c := range s.connsOf(name, nil) {
		c.send(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: v}})
	}
}

// PushTransient sends m to every connection of name as a transient message
// (seq 0, not stored), like a server push notification.
func (s *Server) PushTransient(name string, m *magpiepb.Message) {
	v := proto.Clone(m).(*magpiepb.Message)
	v.Seq, v.Transient = 0, true
	for _, c := range s.connsOf(name, nil) {
		c.send(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: v}})
	}
}

// PushConversation sends a conversation state push to every connection of name.
func (s *Server) PushConversation(name string, st *magpiepb.ConversationState) {
	for _, c := range s.connsOf(name, nil) {
		c.send(&magpiepb.Envelope{Body: &magpiepb.Envelope_Conversation{Conversation: st}})
	}
}

// Messages returns the stored messages between a and b.
func (s *Server) Messages(a, b string) []*magpiepb.Message {
	return s.ConversationMessages(convID(a, b))
}

// ConversationMessages returns the stored messages of a conversation (a
// group's id is its conversation's id).
func (s *Server) ConversationMessages(id string) []*magpiepb.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cv := s.convs[id]; cv != nil {
		out := make([]*magpiepb.Message, len(cv.msgs))
		for i, m := range cv.msgs {
			out[i] = proto.Clone(m).(*magpiepb.Message)
		}
		return out
	}
	return nil
}

// CreateGroup makes a group owned by owner with the other members, storing
// a "created" event, and returns its id.
func (s *Server) CreateGroup(owner, name string, members ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	cv, _ := s.createGroupLocked(owner, name, "", members)
	return cv.id
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func convID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "p:" + a + ":" + b
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) storeLocked(from, to, text, cmid string) (m *magpiepb.Message, dup bool) {
	id := convID(from, to)
	cv := s.convs[id]
	if cv == nil {
		cv = newConv(id, from, to)
		s.convs[id] = cv
	}
	return s.appendLocked(cv, &magpiepb.Message{Sender: from, Text: text, ClientMsgId: cmid})
}

// appendLocked stores m (Sender and ClientMsgId set) as the next message
// of cv, or returns the message stored before with the same id.
func (s *Server) appendLocked(cv *conv, m *magpiepb.Message) (*magpiepb.Message, bool) {
	key := m.Sender + "/" + m.ClientMsgId
	if old := cv.byMsgID[key]; old != nil && m.ClientMsgId != "" {
		return old, true
	}
	m.ConversationId = cv.id
	m.Seq = uint64(len(cv.msgs) + 1)
	m.SenderId = s.users[m.Sender].id
	m.SentAt = time.Now().UnixMilli()
	cv.msgs = append(cv.msgs, m)
	if m.ClientMsgId != "" {
		cv.byMsgID[key] = m
	}
	return m, false
}

// viewLocked copies m with Peer set from name's point of view.
func (s *Server) viewLocked(m *magpiepb.Message, name string) *magpiepb.Message {
	v := proto.Clone(m).(*magpiepb.Message)
	if cv := s.convs[m.GetConversationId()]; cv != nil && !cv.group() {
		v.Peer = cv.other(name)
	}
	return v
}

func (cv *conv) other(name string) string {
	if cv.members[0] == name {
		return cv.members[1]
	}
	return cv.members[0]
}

func (s *Server) connsOf(name string, except *conn) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*conn
	for c := range s.conns {
		if c.user == name && c != except {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].device < out[j].device })
	return out
}

func (c *conn) send(env *magpiepb.Envelope) {
	b, err := proto.Marshal(env)
	if err != nil {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.write(b) != nil {
		c.close()
	}
}

var upgrader = websocket.Upgrader{Subprotocols: []string{wire.SubprotocolProto}}

func (s *Server) acceptTCP(ln net.Listener) {
	defer s.wg.Done()
	gw := ln.Addr().String()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			fr := wire.NewReader(nc, 0, 0)
			c := &conn{
				gateway: gw,
				write:   func(b []byte) error { _, err := nc.Write(wire.AppendFrame(nil, b)); return err },
				close:   func() { nc.Close() },
			}
			s.serve(c, fr.ReadFrame)
		}()
	}
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &conn{
		write: func(b []byte) error { return ws.WriteMessage(websocket.BinaryMessage, b) },
		close: func() { ws.Close() },
	}
	s.serve(c, func() ([]byte, error) { _, b, err := ws.ReadMessage(); return b, err })
}
