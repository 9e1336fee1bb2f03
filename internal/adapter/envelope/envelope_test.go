package envelope

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
)

var sample = store.Message{ConversationID: "p1_2", Seq: 42, SenderID: 1, Sender: "alice", ClientMsgID: "c1",
	Text: "hello there", SentAt: time.UnixMilli(1_700_000_000_000)}

func TestMessageRoundTrip(t *testing.T) {
	var e Encoder
	var env magpiepb.Envelope
	if err := proto.Unmarshal(e.Message(sample, "bob"), &env); err != nil {
		t.Fatal(err)
	}
	m := env.GetMessage()
	if m.GetSeq() != 42 || m.GetPeer() != "bob" || m.GetSender() != "alice" || m.GetSentAt() != 1_700_000_000_000 || m.GetTransient() {
		t.Fatalf("got %v", m)
	}
	if err := proto.Unmarshal(e.Transient(sample), &env); err != nil {
		t.Fatal(err)
	}
	if m := env.GetMessage(); m.GetSeq() != 0 || !m.GetTransient() || m.GetPeer() != "" {
		t.Fatalf("transient: got %v", m)
	}
	if n := e.MessageSize(sample, "bob"); n != proto.Size(Message(sample, "bob"))+8 {
		t.Fatalf("MessageSize %d", n)
	}
}

// BenchmarkMessage is logic's fan-out encode, once per push: one
// allocation (the bytes every Delivery shares) plus the envelope's two.
func BenchmarkMessage(b *testing.B) {
	var e Encoder
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Message(sample, "bob")
	}
}
