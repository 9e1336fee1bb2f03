package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestMetricsListenerIsSeparate(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Metrics = "127.0.0.1:0"
	n := startNode(t, cfg)
	c, _ := newClient(t, n, "alice", "a", "tcp", true)
	if _, err := c.SendText(context.Background(), "alice", "note to self"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + n.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`magpie_gateway_connections{transport="tcp"} 1`, "magpie_logic_messages_stored_total 1", "magpie_goroutines"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// The public listener does not serve them.
	resp, err = http.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("public /metrics: %d, want 404", resp.StatusCode)
	}
}

func TestTooManyConnectionsPerUser(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.MaxConnsPerUser = 2
	n := startNode(t, cfg)
	newClient(t, n, "alice", "a", "tcp", true)
	newClient(t, n, "alice", "b", "tcp", false)
	c3 := newTestClient(n, "alice", "c")
	err := c3.Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "too many connections") {
		t.Fatalf("third connection: %v, want too many connections", err)
	}
	_ = c3.Close()
}
