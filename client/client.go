package client

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/proto/wire"
)

// Options configure a Client. Server, Username and Password are required.
type Options struct {
	Server    string // HTTP base URL, e.g. "http://127.0.0.1:8080"
	App       string // the app (tenant) the user belongs to; "" : the server's default, or the one its host name maps to
	Username  string
	Password  string
	Device    string // this device's id; a random one (kept for the Client's life) if empty
	Platform  string // optional platform class for the server's login policy
	Transport string // "tcp" (default) or "ws"

	Logger     *slog.Logger // nil: discard
	HTTPClient *http.Client // nil: http.DefaultClient, or one using TLS below

	// TLS configures the client side of TLS: of an https Server, of a
	// wss:// WebSocket gateway and of a TCP gateway advertised as
	// tls://host:port. nil verifies against the system roots; set RootCAs
	// to trust a private CA. ServerName defaults to the host dialled. It
	// is used for HTTP too unless HTTPClient is set (then that client's
	// own TLS settings apply to HTTP).
	TLS *tls.Config

	// Callbacks run one at a time, in order, on one SDK goroutine. They
	// may call any Client method; a slow callback delays later ones.
	OnMessage      func(Message)           // each stored message exactly once, in seq order per conversation; transient ones as they arrive
	OnReceipt      func(Receipt)           // someone's delivered/read cursor moved
	OnState        func(State, error)      // connection state changes; error says why
	OnConversation func(ConversationState) // a conversation's state or flags changed (pushed), and each state a sync returns, before its messages (a periodic resync: only those it brings messages for)
	OnTyping       func(Typing)            // another member is typing (or stopped) in a conversation; transient, best effort
	OnNotice       func(Notice)            // something that concerns this user happened (a friend request, a join request, added to a group…); transient, best effort

	BackoffMin time.Duration // first reconnect delay; default 250ms
	BackoffMax time.Duration // cap; default 30s
	// Backoff, if set, replaces the default jittered exponential delays
	// (BackoffMin, BackoffMax) between reconnect attempts and between
	// repeats of a retried call: attempt counts from 0. A server's
	// retry_after still wins when it is longer.
	Backoff Backoff
	// NoReconnect makes a lost connection stop the Client (StateClosed,
	// with the reason) instead of reconnecting; calls on the long
	// connection then fail with that reason. Connect may be called again.
	NoReconnect bool

	// ResyncEvery is how often a connected Client syncs from its cursors
	// in the background, a safety net for a lost live push of a
	// conversation's last message (no later message reveals that gap).
	// It is checked after each pong, so it runs every
	// ceil(ResyncEvery/heartbeat) heartbeats (every 4th at the default
	// 30 s heartbeat), and never while the previous one still runs.
	// 0 means the default, 2 minutes; a negative value disables it.
	ResyncEvery time.Duration

	Cursors CursorStore // optional persistence of the cursors
}

// Client is a connection to a Magpie server as one user and device. All
// methods are safe for concurrent use.
//
// Lock order: Client.mu, then session.mu or dispatcher.mu (both leaves).
// No SDK lock is held while a callback runs.
type Client struct {
	opts    Options
	server  string
	device  string
	log     *slog.Logger
	hc      *http.Client
	backoff backoff
	resync  time.Duration // Options.ResyncEvery resolved; <= 0: off
	nextID  atomic.Uint64
	events  *dispatcher
	runCtx  context.Context // ends at Close
	cancel  context.CancelFunc

	mu       sync.Mutex
	state    State
	changed  chan struct{} // closed and replaced at every state change
	stopErr  error         // why the client stopped (StateClosed)
	running  bool          // Connect succeeded or is in progress, and the client has not stopped
	closed   bool          // Close was called
	loaded   bool          // cursors were loaded from opts.Cursors
	sess     *session
	auth     *loginInfo
	userID   int64
	username string
	convs    map[string]*convState
	receipts map[receiptKey]uint64 // highest receipt seq shown, see receiptPushed
	sending  map[string]struct{}   // client_msg_ids of this Client's sends in flight
	gwAddr   string                // the gateway address the last connect attempt dialled
	gwFails  int                   // consecutive failed dials or auths to gwAddr
	syncing  bool                  // a periodic resync runs
	wg       sync.WaitGroup        // every goroutine except the dispatcher

	// echoes holds the client_msg_ids of this Client's last broadcasts
	// (guarded by mu): the server sends a broadcast to the sender's
	// connection too, and that echo may arrive after the ack, when the id
	// is no longer in sending. A transient has no seq for the cursor to
	// drop it by.
	echoes []string
}

// gatewayFailLimit is how many consecutive failed dials (or auths that got
// no answer) to one gateway address make the Client forget its login and
// log in again, to be routed to a live gateway.
const gatewayFailLimit = 2

// New returns a Client; it does nothing on the network until Connect.
func New(opts Options) *Client {
	c := &Client{
		opts:    opts,
		server:  strings.TrimRight(opts.Server, "/"),
		device:  opts.Device,
		log:     opts.Logger,
		hc:      opts.HTTPClient,
		backoff: backoff{min: opts.BackoffMin, max: opts.BackoffMax, custom: opts.Backoff},
		resync:  opts.ResyncEvery,
		changed: make(chan struct{}),
		convs:   make(map[string]*convState),
		sending: make(map[string]struct{}),
		events:  newDispatcher(),
	}
	if c.device == "" {
		c.device = "sdk-" + newID()[:12]
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.hc == nil {
		c.hc = httpClientFor(opts.TLS)
	}
	if c.backoff.min <= 0 {
		c.backoff.min = 250 * time.Millisecond
	}
	if c.backoff.max < c.backoff.min {
		c.backoff.max = max(30*time.Second, c.backoff.min)
	}
	if c.resync == 0 {
		c.resync = 2 * time.Minute
	}
	c.runCtx, c.cancel = context.WithCancel(context.Background())
	return c
}

// newID returns 32 random hex digits, used for client message ids.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// UserID returns the logged-in user's id (0 before the first login).
func (c *Client) UserID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.userID
}

// Username returns the logged-in user's name (Options.Username before the
// first login).
func (c *Client) Username() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.username == "" {
		return c.opts.Username
	}
	return c.username
}

// Device returns this Client's device id.
func (c *Client) Device() string { return c.device }

// Gateway returns the id of the gateway the current connection is on, or
// "" while there is none.
func (c *Client) Gateway() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil || c.sess.isClosed() {
		return ""
	}
	return c.sess.li.Gateway.ID
}

// GatewayAddr returns the address the current connection dialled: the
// gateway's TCP address ("host:port", "tls://host:port"), or its WebSocket
// URL with Options.Transport "ws"; "" while there is no connection.
func (c *Client) GatewayAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil || c.sess.isClosed() {
		return ""
	}
	if c.opts.Transport == "ws" {
		return c.gatewayAddr(c.sess.li.Gateway.WS)
	}
	return c.gatewayAddr(c.sess.li.Gateway.TCP)
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Connect logs in, connects to the gateway the server names, authenticates
// and syncs everything missed since the cursors. It returns the first
// attempt's error (bad credentials, server down); after it returns nil the
// Client keeps the connection alive in the background, reconnecting with
// backoff, until Close, Logout, a kick without reconnect, or a fatal error
// (reported to OnState with StateClosed).
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.running:
		c.mu.Unlock()
		return errors.New("magpie: already connected")
	}
	c.running, c.stopErr = true, nil
	c.events.start()
	if !c.loaded && c.opts.Cursors != nil {
		cur, err := c.opts.Cursors.Load()
		if err != nil {
			c.running = false
			c.mu.Unlock()
			return fmt.Errorf("magpie: loading cursors: %w", err)
		}
		for id, seq := range cur {
			c.convLocked(id).cursor = seq
		}
	}
	c.loaded = true
	c.setStateLocked(StateConnecting, nil)
	c.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.runCtx, cancel)
	defer stop()
	s, err := c.connectOnce(ctx)
	if err != nil {
		if c.runCtx.Err() != nil {
			err = ErrClosed
		}
		c.stop(err)
		return err
	}
	c.mu.Lock()
	c.goLocked(func() { c.run(s) })
	c.mu.Unlock()
	return nil
}

// connectOnce logs in if needed, dials, authenticates and syncs.
func (c *Client) connectOnce(ctx context.Context) (*session, error) {
	li, err := c.credentials(ctx)
	if err != nil {
		return nil, err
	}
	tcpAddr, wsURL := c.gatewayAddr(li.Gateway.TCP), c.gatewayAddr(li.Gateway.WS)
	addr := tcpAddr
	if c.opts.Transport == "ws" {
		addr = wsURL
	}
	t, err := dialTransport(ctx, c.opts.Transport, tcpAddr, wsURL, c.opts.TLS)
	if err != nil {
		if ctx.Err() == nil {
			c.gatewayFailed(li, addr, err)
		}
		return nil, err
	}
	ok, err := authenticate(ctx, t, li.Token)
	if err != nil {
		t.Close()
		var e *Error
		switch {
		case errors.As(err, &e) && e.Code == wire.CodeDraining:
			c.rerouteFrom(li) // a draining gateway takes no one; ask for a live one
		case errors.As(err, &e) && e.Code.Action() == wire.Relogin:
			c.dropToken(li)
		case errors.As(err, &e):
			c.gatewayAnswered() // it is alive
		case ctx.Err() == nil:
			c.gatewayFailed(li, addr, err)
		}
		return nil, err
	}
	c.gatewayAnswered()
	hb := time.Duration(ok.GetHeartbeatSeconds()) * time.Second
	if hb <= 0 {
		hb = 30 * time.Second
	}
	s := newSession(c, t, li, hb)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		t.Close()
		return nil, ErrClosed
	}
	c.userID, c.username = ok.GetUserId(), ok.GetUsername()
	c.sess = s
	s.startLocked()
	c.mu.Unlock()
	c.log.Debug("connected", "user", ok.GetUsername(), "device", ok.GetDevice(), "heartbeat", hb)

	if err := c.syncOn(ctx, s); err != nil {
		s.close(err)
		return nil, err
	}
	c.mu.Lock()
	if c.sess == s && !s.isClosed() {
		c.setStateLocked(StateReady, nil)
	}
	c.mu.Unlock()
	if s.isClosed() {
		return nil, s.lostErr()
	}
	c.resumeAfterSync()
	return s, nil
}

// run keeps the client connected: it waits for the session to end and
// reconnects with backoff until the client stops.
func (c *Client) run(s *session) {
	for {
		select {
		case <-s.done:
		case <-c.runCtx.Done():
			return
		}
		kick, why := s.result()
		if c.runCtx.Err() != nil {
			return
		}
		var e *Error
		// A kick whose code says "log in again" (session_expired) needs a
		// new token, not a stop: the Relogin case below drops the old one,
		// so no attempt offers it again.
		if kick != nil && !kick.GetReconnect() && wire.Code(kick.GetCode()).Action() != wire.Relogin {
			c.stop(why)
			return
		}
		switch {
		case errors.As(why, &e) && e.Code.Action() == wire.Relogin:
			c.dropToken(s.li)
		case errors.As(why, &e) && e.Code == wire.CodeDraining:
			// The gateway is shutting down (kick{draining, reconnect}):
			// ask for a live one with the token we have.
			c.log.Info("gateway draining; moving to another", "gateway", s.li.Gateway.ID)
			c.rerouteFrom(s.li)
		}
		if c.opts.NoReconnect {
			c.stop(why)
			return
		}
		c.log.Info("connection lost; reconnecting", "err", why)
		c.setState(StateReconnecting, why)
		for attempt := 0; ; attempt++ {
			delay := c.backoff.delay(attempt)
			if errors.As(why, &e) && e.RetryAfter > delay {
				delay = e.RetryAfter
			}
			if !sleep(c.runCtx, delay) {
				return
			}
			ns, err := c.connectOnce(c.runCtx)
			if err == nil {
				s = ns
				break
			}
			if c.runCtx.Err() != nil {
				return
			}
			why = err
			if errors.As(err, &e) && e.Code.Action() == wire.GiveUp {
				c.stop(err)
				return
			}
			c.log.Debug("reconnect failed", "attempt", attempt, "err", err)
		}
	}
}

// gatewayFailed counts a failed dial (or an auth that got no answer) to
// the gateway at addr that login li named. After gatewayFailLimit in a row
// to one address, the next attempt asks the server for a live gateway
// (GET /v1/gateway with the token; a new login if the token is refused):
// the token may stay valid long after its gateway died.
func (c *Client) gatewayFailed(li *loginInfo, addr string, err error) {
	c.mu.Lock()
	if c.gwAddr != addr {
		c.gwAddr, c.gwFails = addr, 0
	}
	c.gwFails++
	drop := c.gwFails >= gatewayFailLimit
	if drop {
		c.gwFails = 0
	}
	c.mu.Unlock()
	if drop {
		c.rerouteFrom(li)
	}
	if drop {
		c.log.Info("gateway unreachable; asking for another", "gateway", li.Gateway.ID, "addr", addr, "err", err)
	}
}

// gatewayAnswered resets the count of failures after a gateway answered.
func (c *Client) gatewayAnswered() {
	c.mu.Lock()
	c.gwAddr, c.gwFails = "", 0
	c.mu.Unlock()
}

// stop ends the client with StateClosed; err says why (nil for Close).
func (c *Client) stop(err error) {
	c.mu.Lock()
	s := c.sess
	c.sess, c.running, c.stopErr = nil, false, err
	c.setStateLocked(StateClosed, err)
	c.mu.Unlock()
	if s != nil {
		s.close(ErrClosed)
	}
	if err != nil {
		c.log.Warn("client stopped", "err", err)
	}
}

func (c *Client) setState(st State, err error) {
	c.mu.Lock()
	c.setStateLocked(st, err)
	c.mu.Unlock()
}

func (c *Client) setStateLocked(st State, err error) {
	if st == c.state && err == nil {
		return
	}
	c.state = st
	close(c.changed)
	c.changed = make(chan struct{})
	if f := c.opts.OnState; f != nil {
		c.events.push(func() { f(st, err) })
	}
}

// ready waits until the client is connected and synced, and returns the
// session. It fails when the client stopped or ctx ended.
func (c *Client) ready(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.state == StateReady && c.sess != nil && !c.sess.isClosed() {
			s := c.sess
			c.mu.Unlock()
			return s, nil
		}
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if !c.running {
			err := c.stopErr
			c.mu.Unlock()
			if err == nil {
				err = ErrNotConnected
			}
			return nil, err
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// goLocked runs f on a tracked goroutine unless the client is closed.
// Called with c.mu held, so Add never races with Close's Wait.
func (c *Client) goLocked(f func()) {
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// Close stops the client: it closes the connection, ends every request in
// flight with ErrClosed, waits for the SDK's goroutines, and reports
// StateClosed. The callback goroutine exits after delivering what was
// queued. Safe to call more than once, and from a callback.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	wasRunning := c.running
	s := c.sess
	c.sess, c.running = nil, false
	c.cancel()
	if wasRunning {
		c.setStateLocked(StateClosed, nil)
	}
	c.mu.Unlock()
	if s != nil {
		s.close(ErrClosed)
	}
	c.wg.Wait()
	c.events.stop()
	return nil
}

// Flush waits until every callback queued before the call has returned (or
// ctx ends): messages already synced or received have been handed to
// OnMessage. A program about to exit calls it so nothing received is left
// unshown. Called from a callback, it waits for ctx to end, as the calling
// callback is one of those it waits for.
func (c *Client) Flush(ctx context.Context) error { return c.events.flush(ctx) }

// Logout ends the session on the server and closes the client.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	li := c.auth
	c.mu.Unlock()
	var err error
	if li != nil {
		err = doJSON(ctx, c.hc, http.MethodPost, c.url("/v1/logout"), li.Token, nil, nil)
	}
	c.Close()
	return err
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
