package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// rawSession speaks the protocol by hand, to test what the SDK hides.
type rawSession struct {
	t *testing.T
	r *wire.Reader
	w func([]byte)
	// close closes the connection.
	close func()
}

func (s *rawSession) call(env *magpiepb.Envelope) *magpiepb.Envelope {
	s.t.Helper()
	b, err := proto.Marshal(env)
	if err != nil {
		s.t.Fatal(err)
	}
	s.w(wire.AppendFrame(nil, b))
	for {
		p, err := s.r.ReadFrame()
		if err != nil {
			s.t.Fatalf("read: %v", err)
		}
		var got magpiepb.Envelope
		if err := proto.Unmarshal(p, &got); err != nil {
			s.t.Fatal(err)
		}
		if got.Id == env.Id {
			return &got
		}
	}
}

func loginToken(t *testing.T, n *Node, user string) string {
	t.Helper()
	base := "http://" + n.HTTPAddr()
	body := `{"username":"` + user + `","password":"password-` + user + `"}`
	resp, err := http.Post(base+"/v1/users", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Post(base+"/v1/login", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("login %s: %v", user, err)
	}
	return out.Token
}

func TestRecallAndEditOverTheLongConnection(t *testing.T) {
	n := startNode(t, testConfig(t, t.TempDir()))
	loginToken(t, n, "bob")
	tok := loginToken(t, n, "alice")
	s := authedRaw(t, n, tok)
	ack := s.call(&magpiepb.Envelope{Id: 2, Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{ToUser: "bob", Text: "tpyo", ClientMsgId: "m1"}}}).GetSendAck()
	if ack == nil || ack.Seq != 1 {
		t.Fatalf("send: %v", ack)
	}
	edit := s.call(&magpiepb.Envelope{Id: 3, Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{ConversationId: ack.ConversationId, Seq: 1, Text: "typo", ClientMsgId: "e1"}}})
	if edit.GetSendAck() == nil {
		t.Fatalf("edit: %v", edit)
	}
	recall := s.call(&magpiepb.Envelope{Id: 4, Body: &magpiepb.Envelope_Recall{Recall: &magpiepb.Recall{ConversationId: ack.ConversationId, Seq: 1, ClientMsgId: "r1"}}})
	if recall.GetSendAck() == nil {
		t.Fatalf("recall: %v", recall)
	}
	hist := s.call(&magpiepb.Envelope{Id: 5, Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{ConversationId: ack.ConversationId}}}).GetHistoryResult()
	if hist == nil || len(hist.Messages) != 3 || !hist.Messages[0].Recalled || hist.Messages[0].Text != "" {
		t.Fatalf("history after edit and recall: %v", hist)
	}
}
