package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

// blockingAuth holds every Authenticate until release is closed.
type blockingAuth struct {
	entered chan struct{}
	release chan struct{}
}

func (h *blockingAuth) Authenticate(ctx context.Context, req *clusterpb.AuthRequest) *clusterpb.AuthReply {
	h.entered <- struct{}{}
	<-h.release
	return &clusterpb.AuthReply{}
}

func (h *blockingAuth) Handle(req *clusterpb.Request, reply func([]byte)) { reply(nil) }

// The bus subscriptions have bounded pending limits, and an
// authentication in flight is counted in the owner's WaitGroup until it
// has answered.
func TestServeLogicBoundsAndTracks(t *testing.T) {
	ns := startServer(t)
	nc := connect(t, ns)
	h := &blockingAuth{entered: make(chan struct{}, 1), release: make(chan struct{})}
	var g Group
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs, err := ServeLogic(ctx, nc, h, &g)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the server has the subscriptions before the request below
		t.Fatal(err)
	}
	for _, s := range subs {
		msgs, bytes, err := s.PendingLimits()
		if err != nil || msgs != requestPendingMsgs || bytes != requestPendingBytes {
			t.Errorf("%s: pending limits %d msgs, %d bytes (%v); want %d, %d", s.Subject, msgs, bytes, err, requestPendingMsgs, requestPendingBytes)
		}
	}
	lc, err := NewLogicClient(connect(t, ns), "gw-t", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	if msgs, bytes, err := lc.sub.PendingLimits(); err != nil || msgs != replyPendingMsgs || bytes != replyPendingBytes {
		t.Errorf("reply inbox: pending limits %d msgs, %d bytes (%v); want %d, %d", msgs, bytes, err, replyPendingMsgs, replyPendingBytes)
	}

	answered := make(chan error, 1)
	go func() {
		_, err := lc.Authenticate(context.Background(), &clusterpb.AuthRequest{Token: "t"})
		answered <- err
	}()
	select {
	case <-h.entered:
	case err := <-answered:
		t.Fatalf("the authentication never reached the handler: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the authentication never reached the handler")
	}
	for _, s := range subs {
		_ = s.Drain()
	}
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond) // a negative check: a short look is enough
	defer cancelShort()
	if err := g.Stop(short); err == nil {
		t.Fatal("Stop returned with an authentication still running")
	}
	if g.Go(func() {}) {
		t.Fatal("Go started a goroutine after Stop")
	}
	close(h.release)
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-answered; err != nil {
		t.Fatalf("the authentication in flight at the drain was not answered: %v", err)
	}
}
