package gateway

import (
	"context"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// Logic is the gateway's view of the logic role. The cluster package
// implements it over NATS request/reply; tests can use a fake.
type Logic interface {
	// Authenticate checks the token of a new connection. The reply's
	// envelope (AuthOK or Error) is written to the client as is; reply.Conn
	// is set only on success. A returned error means logic was unreachable.
	Authenticate(ctx context.Context, req *clusterpb.AuthRequest) (*clusterpb.AuthReply, error)

	// Forward sends one client request (an encoded Envelope in req) to logic
	// without waiting. done is called exactly once, with the encoded answer
	// Envelope or an error (timeout, no logic node), usually from another
	// goroutine, possibly before Forward returns. Requests forwarded in
	// order from one goroutine reach logic in order.
	Forward(req *clusterpb.Request, done func(reply []byte, err error))
}

// LocalLogic is a Logic running in the same process (serve). The gateway
// hands it the request it decoded, so the request is neither encoded
// again nor decoded again on the way.
type LocalLogic interface {
	Logic
	// ForwardEnvelope is Forward with the request decoded: env belongs to
	// the callee from now on; conn is only read.
	ForwardEnvelope(conn *clusterpb.ConnRef, env *magpiepb.Envelope, done func(reply []byte, err error))
}

// Presence records which connections are online, so logic can route
// deliveries to this gateway.
type Presence interface {
	// Connected is called after a connection authenticated, before the
	// client is told so.
	Connected(ctx context.Context, conn *clusterpb.ConnRef) error
	// Disconnected is called once when an authenticated connection closes.
	Disconnected(ctx context.Context, conn *clusterpb.ConnRef) error
}
