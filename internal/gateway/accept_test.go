package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/magpie-im/magpie/proto/wire"
)

// The accept rate holds new TCP connections back: 12 authentications at
// 20 connections/s (burst 2) cannot finish sooner than (12-2)/20 s. Only a
// lower bound is asserted: a slow machine may take longer, never shorter.
func TestAcceptRateBoundsNewTCPConnections(t *testing.T) {
	ts := startServer(t, Config{AcceptRate: 20})
	start := time.Now()
	for range 12 {
		ts.dial(t, kindTCP).login("alice")
	}
	if took, least := time.Since(start), 500*time.Millisecond; took < least {
		t.Fatalf("12 connections accepted in %v at 20/s (burst 2): the rate cannot allow less than %v", took, least)
	}
	if st := ts.g.Stats(); st.AcceptWaits == 0 || st.ConnsByKind[TCP] != 12 {
		t.Fatalf("stats: %d accepts waited, %d TCP connections; want > 0 and 12", st.AcceptWaits, st.ConnsByKind[TCP])
	}
}

// Without a rate there is no wait at all.
func TestNoAcceptRateNoWaits(t *testing.T) {
	ts := startServer(t, Config{})
	for range 12 {
		ts.dial(t, kindTCP).login("alice")
	}
	if st := ts.g.Stats(); st.AcceptWaits != 0 {
		t.Fatalf("%d accepts waited without an accept rate", st.AcceptWaits)
	}
}

// A WebSocket upgrade that would wait past AuthTimeout for its turn gets
// 503 with Retry-After instead of a held request.
func TestAcceptRateRefusesWebSocketPastAuthTimeout(t *testing.T) {
	ts := startServer(t, Config{AcceptRate: 0.5, AuthTimeout: 200 * time.Millisecond}) // burst 1, then one per 2 s
	ts.dial(t, kindWSProto)
	d := websocket.Dialer{Subprotocols: []string{wire.SubprotocolProto}}
	_, resp, err := d.Dial(ts.wsURL, nil)
	if err == nil || resp == nil {
		t.Fatalf("second upgrade within 2s at 0.5/s: err %v, want 503", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("second upgrade: %d Retry-After %q, want 503 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := ts.g.Stats(); st.AcceptRefused != 1 {
		t.Fatalf("AcceptRefused = %d, want 1", st.AcceptRefused)
	}
}
