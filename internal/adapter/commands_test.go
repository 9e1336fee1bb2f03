package adapter

import (
	"testing"

	"github.com/magpie-im/magpie/proto/magpiepb"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		env                      *magpiepb.Envelope
		want                     string // "" : not a client command
		auth, byGateway, ordered bool
	}{
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Auth{Auth: &magpiepb.Auth{}}}, "auth", false, true, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{}}}, "ping", true, true, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{}}}, "send", true, false, true},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Recall{Recall: &magpiepb.Recall{}}}, "recall", true, false, true},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Edit{Edit: &magpiepb.Edit{}}}, "edit", true, false, true},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{}}}, "receipt", true, false, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Sync{Sync: &magpiepb.SyncRequest{}}}, "sync", true, false, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{}}}, "history", true, false, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Online{Online: &magpiepb.OnlineRequest{}}}, "online", true, false, false},
		{&magpiepb.Envelope{}, "", false, false, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_AuthOk{AuthOk: &magpiepb.AuthOK{}}}, "", false, false, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: &magpiepb.Message{}}}, "", false, false, false},
		{&magpiepb.Envelope{Body: &magpiepb.Envelope_Kick{Kick: &magpiepb.Kick{}}}, "", false, false, false},
	}
	for _, tt := range tests {
		c := Lookup(tt.env)
		if tt.want == "" {
			if c != nil {
				t.Errorf("Lookup(%v) = %q, want none", tt.env, c.Name)
			}
			continue
		}
		if c == nil || c.Name != tt.want || c.Auth != tt.auth || c.ByGateway != tt.byGateway || c.Ordered != tt.ordered {
			t.Errorf("Lookup(%v) = %+v, want %s auth=%v byGateway=%v ordered=%v", tt.env, c, tt.want, tt.auth, tt.byGateway, tt.ordered)
		}
	}
}

// BenchmarkLookup: the gateway looks up every frame.
func BenchmarkLookup(b *testing.B) {
	env := &magpiepb.Envelope{Body: &magpiepb.Envelope_Send{Send: &magpiepb.Send{}}}
	b.ReportAllocs()
	for b.Loop() {
		if Lookup(env) == nil {
			b.Fatal("no command")
		}
	}
}
