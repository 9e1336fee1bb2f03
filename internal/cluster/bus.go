package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

// LogicClient is a gateway's connection to the logic role. It implements
// gateway.Logic.
type LogicClient struct {
	nc      *nats.Conn
	timeout time.Duration
	prefix  string // reply subject prefix, unique to this gateway
	sub     *nats.Subscription

	mu      sync.Mutex // guards pending and next
	next    uint64
	pending map[uint64]*pendingReq
}

type pendingReq struct {
	done  func([]byte, error)
	timer *time.Timer
}

// NewLogicClient subscribes to the gateway's reply inbox.
func NewLogicClient(nc *nats.Conn, gatewayID string, timeout time.Duration) (*LogicClient, error) {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	c := &LogicClient{
		nc:      nc,
		timeout: timeout,
		prefix:  "_INBOX.magpie." + gatewayID + "." + nats.NewInbox()[len("_INBOX."):] + ".",
		pending: make(map[uint64]*pendingReq),
	}
	sub, err := nc.Subscribe(c.prefix+"*", c.onReply)
	if err != nil {
		return nil, fmt.Errorf("reply inbox: %w", err)
	}
	if err := sub.SetPendingLimits(replyPendingMsgs, replyPendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("reply inbox: %w", err)
	}
	c.sub = sub
	return c, nil
}

// Authenticate implements gateway.Logic.
func (c *LogicClient) Authenticate(ctx context.Context, req *clusterpb.AuthRequest) (*clusterpb.AuthReply, error) {
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, subjAuth, data)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return nil, ErrNoLogic
		}
		return nil, err
	}
	var reply clusterpb.AuthReply
	if err := proto.Unmarshal(msg.Data, &reply); err != nil {
		return nil, fmt.Errorf("auth reply: %w", err)
	}
	return &reply, nil
}

// Forward implements gateway.Logic: it publishes now (so order from one
// caller is kept) and calls done when the reply or the timeout comes.
func (c *LogicClient) Forward(req *clusterpb.Request, done func([]byte, error)) {
	data, err := proto.Marshal(req)
	if err != nil {
		done(nil, err)
		return
	}
	c.mu.Lock()
	c.next++
	id := c.next
	p := &pendingReq{done: done}
	c.pending[id] = p
	p.timer = time.AfterFunc(c.timeout, func() {
		if c.take(id) != nil {
			done(nil, ErrTimeout)
		}
	})
	c.mu.Unlock()
	if err := c.nc.PublishRequest(subjRequest, c.prefix+strconv.FormatUint(id, 10), data); err != nil {
		if c.take(id) != nil {
			done(nil, err)
		}
	}
}

func (c *LogicClient) take(id uint64) *pendingReq {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[id]
	if p != nil {
		delete(c.pending, id)
		p.timer.Stop()
	}
	return p
}

func (c *LogicClient) onReply(m *nats.Msg) {
	id, err := strconv.ParseUint(m.Subject[len(c.prefix):], 10, 64)
	if err != nil {
		return
	}
	p := c.take(id)
	if p == nil {
		return // timed out already
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		p.done(nil, ErrNoLogic)
		return
	}
	p.done(m.Data, nil)
}

// Close stops the reply subscription and fails every pending request.
func (c *LogicClient) Close() {
	_ = c.sub.Unsubscribe()
	c.mu.Lock()
	pending := c.pending
	c.pending = map[uint64]*pendingReq{}
	c.mu.Unlock()
	for _, p := range pending {
		p.timer.Stop()
		p.done(nil, ErrNoLogic)
	}
}

const (
	// MaxConcurrentAuths is how many authentications a logic node runs
	// at once from the bus (and serve's direct path, from its gateway).
	MaxConcurrentAuths = 256
	authTimeout        = 10 * time.Second // the gateway gives up on an auth sooner
)

// Pending limits of the bus subscriptions: what NATS queues in this process
// for a handler that has fallen behind. Past them NATS drops messages for
// this subscriber (a slow consumer) instead of growing the heap without
// bound; a dropped request or reply is a timeout for the gateway, which the
// client retries (its request ids make the retry safe).
//
// The numbers: a request waiting longer than the gateway's
// --request-timeout (10 s by default) is answered to no one, and the
// closed-loop W2 maximum is about 12 k requests/s (docs/benchmarks.md), so
// 128 Ki messages is roughly that timeout's worth at full speed: a backlog
// beyond it only holds answers nobody waits for. The byte limit caps the
// same queue when requests are large (files' metadata, long texts) at
// 128 MiB. Replies come back at most as fast as requests went out, and
// the gateway caps each connection's requests in flight, so the reply
// inbox gets the same limits.
const (
	requestPendingMsgs  = 128 << 10
	requestPendingBytes = 128 << 20
	replyPendingMsgs    = requestPendingMsgs
	replyPendingBytes   = requestPendingBytes
)

// LogicHandler is what a logic node serves over the bus.
type LogicHandler interface {
	// Authenticate answers a gateway's AuthRequest.
	Authenticate(ctx context.Context, req *clusterpb.AuthRequest) *clusterpb.AuthReply
	// Handle answers one forwarded client request by calling reply exactly
	// once with an encoded Envelope, possibly later from another goroutine.
	Handle(req *clusterpb.Request, reply func([]byte))
}

// ServeLogic subscribes h to the logic subjects in the "logic" queue group,
// so each request reaches exactly one logic node. Unsubscribe (or Drain)
// the returned subscriptions to stop.
//
// Authentications run off the subscription's goroutine, at most
// MaxConcurrentAuths at once, each on a goroutine of g and under a context
// derived from ctx (the node's lifetime): the owner stops g, which waits
// for them. Once ctx ended or g stopped, auths still queued are dropped
// (the gateway times them out and the client retries elsewhere).
func ServeLogic(ctx context.Context, nc *nats.Conn, h LogicHandler, g *Group) ([]*nats.Subscription, error) {
	// A reconnect storm brings thousands of auths at once: a bounded number
	// run at a time, the rest wait in the subscription's queue.
	authSlots := make(chan struct{}, MaxConcurrentAuths)
	auth, err := nc.QueueSubscribe(subjAuth, queueLogic, func(m *nats.Msg) {
		var req clusterpb.AuthRequest
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			return
		}
		// Authentication hashes nothing but reads the store: run it off
		// the subscription goroutine so one slow lookup stalls no one.
		if ctx.Err() != nil {
			return
		}
		select {
		case authSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		started := g.Go(func() {
			defer func() { <-authSlots }()
			ctx, cancel := context.WithTimeout(ctx, authTimeout)
			defer cancel()
			reply := h.Authenticate(ctx, &req)
			data, err := proto.Marshal(reply)
			if err == nil {
				_ = m.Respond(data)
			}
		})
		if !started {
			<-authSlots
		}
	})
	if err != nil {
		return nil, err
	}
	reqs, err := nc.QueueSubscribe(subjRequest, queueLogic, func(m *nats.Msg) {
		var req clusterpb.Request
		if err := proto.Unmarshal(m.Data, &req); err != nil {
			return
		}
		reply := m.Reply
		h.Handle(&req, func(data []byte) { _ = nc.Publish(reply, data) })
	})
	if err != nil {
		_ = auth.Unsubscribe()
		return nil, err
	}
	for _, s := range []*nats.Subscription{auth, reqs} {
		if err := s.SetPendingLimits(requestPendingMsgs, requestPendingBytes); err != nil {
			_ = auth.Unsubscribe()
			_ = reqs.Unsubscribe()
			return nil, err
		}
	}
	return []*nats.Subscription{auth, reqs}, nil
}

// Group tracks goroutines for their owner. Unlike a bare WaitGroup, it
// refuses new goroutines once Stop began, so one started late (by a NATS
// callback of a subscription already left, say) cannot race the wait.
// The zero Group is ready to use.
type Group struct {
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// Go runs fn on a new goroutine of g, or returns false (and does not run
// fn) once g was stopped.
func (g *Group) Go(fn func()) bool {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return false
	}
	g.wg.Add(1)
	g.mu.Unlock()
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// Do runs fn on the caller's goroutine, counted like one started by Go, or
// returns false (and does not run fn) once g was stopped.
func (g *Group) Do(fn func()) bool {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return false
	}
	g.wg.Add(1)
	g.mu.Unlock()
	defer g.wg.Done()
	fn()
	return true
}

// Stop refuses new goroutines and waits for the running ones, or returns
// ctx's error first. Safe to call twice.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Publisher sends deliveries to gateways.
type Publisher struct{ nc *nats.Conn }

func NewPublisher(nc *nats.Conn) *Publisher { return &Publisher{nc: nc} }

// Deliver publishes d to one gateway. Delivery is best effort: the message
// is already stored and clients fill gaps by seq.
func (p *Publisher) Deliver(gatewayID string, d *clusterpb.Delivery) error {
	data, err := proto.Marshal(d)
	if err != nil {
		return err
	}
	return p.nc.Publish(deliverSubject(gatewayID), data)
}

// SubscribeDeliveries hands every Delivery addressed to gatewayID to fn, in
// order, on one goroutine.
func SubscribeDeliveries(nc *nats.Conn, gatewayID string, fn func(*clusterpb.Delivery)) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(deliverSubject(gatewayID), func(m *nats.Msg) {
		var d clusterpb.Delivery
		if err := proto.Unmarshal(m.Data, &d); err != nil {
			return
		}
		fn(&d)
	})
	if err != nil {
		return nil, err
	}
	sub.SetPendingLimits(1<<20, 512<<20)
	return sub, nil
}
