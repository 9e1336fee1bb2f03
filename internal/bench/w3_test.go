package bench

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
)

func TestParseMessageFrame(t *testing.T) {
	b := &w3{pad: "xx"}
	text := b.text(3, true, 1234567890123)
	frame, err := proto.Marshal(&magpiepb.Envelope{Id: 0, Body: &magpiepb.Envelope_Message{Message: &magpiepb.Message{
		ConversationId: "g_7", Seq: 42, SenderId: 9, Sender: "s", ClientMsgId: "c", Text: text, SentAt: 5,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	body, conv, seq, txt, ok := parseMessageFrame(frame)
	if !ok || body != 14 || string(conv) != "g_7" || seq != 42 || string(txt) != text {
		t.Fatalf("got %v %q %d %q %v", body, conv, seq, txt, ok)
	}
	step, measured, intended, ok := parseW3(txt)
	if !ok || step != 3 || !measured || intended != 1234567890123 {
		t.Fatalf("parseW3: %d %v %d %v", step, measured, intended, ok)
	}
	if _, _, _, ok := parseW3([]byte("hello")); ok {
		t.Fatal("parseW3 accepted a foreign text")
	}
	pong, _ := proto.Marshal(&magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Pong{Pong: &magpiepb.Pong{Time: 1}}})
	if body, _, _, _, ok := parseMessageFrame(pong); !ok || body != 21 {
		t.Fatalf("pong: body %v ok %v", body, ok)
	}
	if _, _, _, _, ok := parseMessageFrame([]byte{0xff}); ok {
		t.Fatal("garbage accepted")
	}
}

func TestErrText(t *testing.T) {
	err := errors.New("write tcp 127.0.0.1:37112->127.0.0.1:21070: write: broken pipe")
	if got := errText(err); got != "write: broken pipe" {
		t.Fatalf("errText = %q", got)
	}
}
