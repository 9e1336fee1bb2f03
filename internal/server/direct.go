package server

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/adapter"
	"github.com/magpie-im/magpie/internal/cluster"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/gateway"
	"github.com/magpie-im/magpie/internal/logic"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// The direct path of a node running both roles (serve): its gateway calls
// its logic in process, and its logic writes deliveries for its own gateway
// straight into the gateway's connections. Over NATS each request and each
// delivery was encoded, routed, decoded and handed between goroutines
// three times; here a request runs the adapter on the reader's goroutine
// (which returns at once: logic queues it on a lane or in its read pool)
// and logic's answer is written by whichever goroutine produced it.
//
// Everything else stays on the bus, so the node behaves as over NATS:
// requests go there whenever the bus would not have this node in the logic
// queue (database down, shutting down), and so reach another logic node if
// one shares the NATS, or fail at once with "no responders" if none does;
// other gateways' deliveries, other logic nodes' deliveries to this
// gateway, the registry and presence are unchanged.

// directLogic is the gateway's Logic on a node that also runs logic.
type directLogic struct {
	h       *adapter.Handler
	bus     *logicBus            // serving says when to go direct; its Group tracks authentications
	remote  *cluster.LogicClient // the bus path
	timeout time.Duration        // --request-timeout, as the bus path's
	slots   chan struct{}        // authentications at once, as on the bus
}

var _ gateway.LocalLogic = (*directLogic)(nil)

func newDirectLogic(h *adapter.Handler, bus *logicBus, remote *cluster.LogicClient, timeout time.Duration) *directLogic {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &directLogic{h: h, bus: bus, remote: remote, timeout: timeout, slots: make(chan struct{}, cluster.MaxConcurrentAuths)}
}

// Authenticate runs the authentication on the caller's goroutine, at most
// cluster.MaxConcurrentAuths at once (the rest wait, within ctx), counted
// in the logic bus's Group so its stop waits for them.
func (d *directLogic) Authenticate(ctx context.Context, req *clusterpb.AuthRequest) (*clusterpb.AuthReply, error) {
	if !d.bus.serving() {
		return d.remote.Authenticate(ctx, req)
	}
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-d.slots }()
	var reply *clusterpb.AuthReply
	if !d.bus.auths.Do(func() { reply = d.h.Authenticate(ctx, req) }) {
		return d.remote.Authenticate(ctx, req) // the bus stopped meanwhile
	}
	return reply, nil
}

// Forward implements gateway.Logic for an encoded request.
func (d *directLogic) Forward(req *clusterpb.Request, done func([]byte, error)) {
	if !d.bus.serving() {
		d.remote.Forward(req, done)
		return
	}
	a := d.answer(done)
	d.h.Handle(req, a.reply)
}

// ForwardEnvelope implements gateway.LocalLogic.
func (d *directLogic) ForwardEnvelope(conn *clusterpb.ConnRef, env *magpiepb.Envelope, done func([]byte, error)) {
	if !d.bus.serving() {
		raw, err := proto.Marshal(env)
		if err != nil {
			done(nil, err)
			return
		}
		d.remote.Forward(&clusterpb.Request{Conn: conn, Envelope: raw}, done)
		return
	}
	a := d.answer(done)
	d.h.HandleEnvelope(conn, env, a.reply)
}

// answer wraps done so that it runs once: with logic's answer, or with
// cluster.ErrTimeout after --request-timeout, as on the bus (the client is
// told to retry instead of waiting on a request logic never answers).
func (d *directLogic) answer(done func([]byte, error)) *directAnswer {
	a := &directAnswer{done: done}
	a.timer = time.AfterFunc(d.timeout, a.expire)
	return a
}

type directAnswer struct {
	done  func([]byte, error)
	timer *time.Timer // set before logic can answer
	once  atomic.Bool
}

func (a *directAnswer) reply(b []byte) {
	if a.once.CompareAndSwap(false, true) {
		a.timer.Stop()
		a.done(b, nil)
	}
}

func (a *directAnswer) expire() {
	if a.once.CompareAndSwap(false, true) {
		a.done(nil, cluster.ErrTimeout)
	}
}

// directDeliverer is logic's Deliverer on a node that also runs a
// gateway: deliveries for that gateway go straight to it, on the calling
// goroutine (Gateway.Deliver never blocks on a client), the others over
// NATS. Until the gateway is attached everything goes over NATS.
type directDeliverer struct {
	remote logic.Deliverer
	local  atomic.Pointer[localGateway]
}

type localGateway struct {
	id string
	gw *gateway.Gateway
}

// attach routes deliveries for id to gw from now on; call it before gw
// serves a connection, so no delivery for a connection of gw goes both ways.
func (d *directDeliverer) attach(id string, gw *gateway.Gateway) {
	d.local.Store(&localGateway{id: id, gw: gw})
}

func (d *directDeliverer) Deliver(gatewayID string, del *clusterpb.Delivery) error {
	if l := d.local.Load(); l != nil && l.id == gatewayID {
		l.gw.Deliver(del)
		return nil
	}
	return d.remote.Deliver(gatewayID, del)
}
