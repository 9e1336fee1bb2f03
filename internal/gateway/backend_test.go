package gateway

import (
	"sync"
	"testing"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

// localLogic is a LocalLogic that answers on the caller's goroutine,
// before ForwardEnvelope returns (as serve's direct path may), and records
// what it was handed.
type localLogic struct {
	*fakeLogic
	mu      sync.Mutex
	got     []*magpiepb.Envelope
	conns   []*clusterpb.ConnRef
	encoded int // Forward calls: none expected
}

func (l *localLogic) Forward(req *clusterpb.Request, done func([]byte, error)) {
	l.mu.Lock()
	l.encoded++
	l.mu.Unlock()
	l.fakeLogic.Forward(req, done)
}

func (l *localLogic) ForwardEnvelope(conn *clusterpb.ConnRef, env *magpiepb.Envelope, done func([]byte, error)) {
	l.mu.Lock()
	l.got = append(l.got, env)
	l.conns = append(l.conns, conn)
	l.mu.Unlock()
	done(encodeEnvelope(encProto, &magpiepb.Envelope{Id: env.Id, Body: &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{
		ClientMsgId: env.GetSend().GetClientMsgId(), Seq: 41,
	}}}), nil)
}

// TestLocalLogicGetsDecodedRequests: a LocalLogic gets each forwarded
// request as the envelope the gateway decoded (for JSON connections too),
// with the connection's ref, never an encoded Forward; an answer given
// before ForwardEnvelope returns reaches the client and frees its slot.
func TestLocalLogicGetsDecodedRequests(t *testing.T) {
	for _, kind := range allKinds {
		t.Run(kind.String(), func(t *testing.T) {
			fake := &fakeLogic{}
			l := &localLogic{fakeLogic: fake}
			ts := startServerWith(t, Config{MaxInFlight: 1}, fake, l)
			c := ts.dial(t, kind)
			ok := c.login("alice")
			for i := uint64(2); i < 5; i++ { // MaxInFlight 1: each must have been released
				c.send(sendEnv(i, "hi"))
				if env := c.read(); env.Id != i || env.GetSendAck().GetSeq() != 41 || env.GetSendAck().GetClientMsgId() != "m1" {
					t.Fatalf("got %v, want SendAck{seq 41, m1} for id %d", env, i)
				}
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.encoded != 0 || len(l.got) != 3 {
				t.Fatalf("got %d decoded and %d encoded requests, want 3 and 0", len(l.got), l.encoded)
			}
			for i, env := range l.got {
				if env.Id != uint64(i+2) || env.GetSend().GetText() != "hi" || env.GetSend().GetToUser() != "bob" {
					t.Fatalf("request %d: got %v", i, env)
				}
				if c := l.conns[i]; c.GetUserId() != ok.UserId || c.GetGateway() != "gw-test" || c.GetSessionId() != ok.SessionId {
					t.Fatalf("request %d: conn %v, want alice's on gw-test", i, c)
				}
			}
		})
	}
}
