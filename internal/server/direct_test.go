package server

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// TestServeDirectPath: on a node running both roles, a login, a send, its
// ACK and its delivery take the direct path: nothing crosses the bus's
// logic or delivery subjects. While the bus would not serve this node's
// logic (the database down), requests go over the bus as before (here no
// logic node answers them: unavailable, at once), and go direct again once
// it serves.
func TestServeDirectPath(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	var onBus atomic.Int64
	sub, err := n.nc.Subscribe("magpie.>", func(m *nats.Msg) {
		if strings.HasPrefix(m.Subject, "magpie.logic.") || strings.HasSuffix(m.Subject, ".deliver") {
			onBus.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := n.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	alice := authedRaw(t, n, loginToken(t, n, "alice"))
	bob := authedRaw(t, n, loginToken(t, n, "bob"))
	send := func(id uint64, cmid string) *magpiepb.Envelope {
		return alice.call(&magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", ClientMsgId: cmid, Text: "hi " + cmid}}})
	}
	if ack := send(2, "m1").GetSendAck(); ack.GetSeq() != 1 {
		t.Fatalf("got %v, want send_ack seq 1", ack)
	}
	readMessage := func(seq uint64) {
		t.Helper()
		for {
			p, err := bob.r.ReadFrame()
			if err != nil {
				t.Fatalf("bob: %v", err)
			}
			var env magpiepb.Envelope
			if err := proto.Unmarshal(p, &env); err != nil {
				t.Fatal(err)
			}
			if m := env.GetMessage(); m != nil {
				if m.Seq != seq {
					t.Fatalf("bob got seq %d, want %d", m.Seq, seq)
				}
				return
			}
		}
	}
	readMessage(1)
	if err := n.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := onBus.Load(); got != 0 {
		t.Fatalf("%d messages on the bus's logic and delivery subjects, want none", got)
	}

	n.bus.setHealthy(false)
	if e := send(3, "m2").GetError(); e.GetCode() != uint32(wire.CodeUnavailable) {
		t.Fatalf("database down: got %v, want unavailable", e)
	}
	if onBus.Load() == 0 {
		t.Fatal("database down: the request did not go over the bus")
	}
	n.bus.setHealthy(true)
	before := onBus.Load()
	if ack := send(4, "m3").GetSendAck(); ack.GetSeq() != 2 {
		t.Fatalf("database back: got %v, want send_ack seq 2", ack)
	}
	readMessage(2)
	if err := n.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := onBus.Load(); got != before {
		t.Fatalf("database back: %d more messages on the bus, want none", got-before)
	}
}
