package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// wantReconnect is what the code table promises a kicked client: connect
// again if the code's action is to reconnect or retry; not if it is to
// give up, nor if it is to log in again (log in first). Written out here,
// not taken from the server's own helper, so a kick and the table cannot
// drift apart unnoticed.
func wantReconnect(c wire.Code) bool {
	switch c.Action() {
	case wire.Reconnect, wire.Retry:
		return true
	}
	return false
}

// deviceToken registers user (if new) and logs in on device.
func deviceToken(t *testing.T, n *Node, user, device string) string {
	t.Helper()
	base := "http://" + n.HTTPAddr()
	creds := `{"username":"` + user + `","password":"password-` + user + `"`
	if resp, err := http.Post(base+"/v1/users", "application/json", bytes.NewBufferString(creds+"}")); err == nil {
		resp.Body.Close()
	}
	resp, err := http.Post(base+"/v1/login", "application/json", bytes.NewBufferString(creds+`,"device":"`+device+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		t.Fatalf("login %s/%s: %v", user, device, err)
	}
	return out.Token
}

// readUntilKick reads frames until a kick arrives.
func (s *rawSession) readUntilKick() *magpiepb.Kick {
	s.t.Helper()
	for {
		p, err := s.r.ReadFrame()
		if err != nil {
			s.t.Fatalf("read: %v, want a kick", err)
		}
		var env magpiepb.Envelope
		if err := proto.Unmarshal(p, &env); err != nil {
			s.t.Fatal(err)
		}
		if k := env.GetKick(); k != nil {
			return k
		}
	}
}

// keepAlive pings every interval until the test ends, so that a slow
// request elsewhere (an Argon2 login on a loaded machine with -race) does
// not end the session with a heartbeat timeout before the kick under test.
func (s *rawSession) keepAlive(every time.Duration) {
	done := make(chan struct{})
	s.t.Cleanup(func() { close(done) })
	ping, _ := proto.Marshal(&magpiepb.Envelope{Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: 1}}})
	go func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				s.w(wire.AppendFrame(nil, ping))
			}
		}
	}()
}

// Every kick the server sends, whichever side builds it (the gateway for
// transport faults and draining, the logic for revoked sessions), carries
// the reconnect flag its code's action says: kick{19} used to say "do not
// reconnect" while the table said "reconnect".
func TestEveryKickMatchesItsCodesAction(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.AuthTimeout = 300 * time.Millisecond
	cfg.Heartbeat = 200 * time.Millisecond
	cfg.HeartbeatTO = 600 * time.Millisecond
	n := startNode(t, cfg)
	raw := func(t *testing.T) *rawSession {
		c := rawTCP(t, n)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		return &rawSession{t: t, r: wire.NewReader(c, 0, 0), w: func(b []byte) { _, _ = c.Write(b) }, close: func() { _ = c.Close() }}
	}
	tests := []struct {
		name string
		code wire.Code
		run  func(t *testing.T) *magpiepb.Kick
	}{
		{"oversized frame", wire.CodeTooLarge, func(t *testing.T) *magpiepb.Kick {
			s := raw(t)
			s.w(binary.BigEndian.AppendUint32(nil, wire.MaxFrame+1))
			return s.readUntilKick()
		}},
		{"undecodable frame", wire.CodeProtocolError, func(t *testing.T) *magpiepb.Kick {
			s := raw(t)
			s.w(wire.AppendFrame(nil, []byte{0xff, 0xfe, 0xfd, 0x01}))
			return s.readUntilKick()
		}},
		{"no auth", wire.CodeAuthTimeout, func(t *testing.T) *magpiepb.Kick {
			return raw(t).readUntilKick()
		}},
		{"silent after auth", wire.CodeHeartbeatTimeout, func(t *testing.T) *magpiepb.Kick {
			return authedRaw(t, n, deviceToken(t, n, "hank", "h")).readUntilKick()
		}},
		{"same device logs in again", wire.CodeReplaced, func(t *testing.T) *magpiepb.Kick {
			s := authedRaw(t, n, deviceToken(t, n, "rita", "phone"))
			s.keepAlive(cfg.Heartbeat / 2)
			deviceToken(t, n, "rita", "phone")
			return s.readUntilKick()
		}},
		{"logout", wire.CodeLoggedOut, func(t *testing.T) *magpiepb.Kick {
			tok := deviceToken(t, n, "lou", "l")
			s := authedRaw(t, n, tok)
			s.keepAlive(cfg.Heartbeat / 2)
			req, _ := http.NewRequest("POST", "http://"+n.HTTPAddr()+"/v1/logout", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return s.readUntilKick()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := tt.run(t)
			if wire.Code(k.Code) != tt.code {
				t.Fatalf("got %v, want kick{%v}", k, tt.code)
			}
			if k.Reconnect != wantReconnect(tt.code) {
				t.Fatalf("kick{%d %s}: reconnect %v, but the code's action says %v", k.Code, tt.code, k.Reconnect, wantReconnect(tt.code))
			}
		})
	}
	// Draining, last: it stops the node.
	s := authedRaw(t, n, deviceToken(t, n, "dora", "d"))
	stopped := make(chan struct{})
	go func() { defer close(stopped); stopNode(t, n) }()
	k := s.readUntilKick()
	s.close() // as a kicked client does, so the drain ends
	<-stopped
	if wire.Code(k.Code) != wire.CodeDraining || k.Reconnect != wantReconnect(wire.CodeDraining) {
		t.Fatalf("got %v, want kick{draining} with reconnect %v", k, wantReconnect(wire.CodeDraining))
	}
}
