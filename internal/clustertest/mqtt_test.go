package clustertest

import (
	"sync/atomic"
	"testing"
)

// The away device's backlog counts as it was before the reconnect, even
// when the device shows all of it the moment its CONNACK arrives.
func TestMissingAtReconnectCountsBeforeTheCatchUp(t *testing.T) {
	var connects atomic.Int64
	polls := 0
	missing := func() int {
		polls++
		switch {
		case connects.Load() > 0:
			return 0 // caught up at once
		case polls == 3:
			connects.Add(1) // the CONNACK and the backlog land while this poll runs
			return 4
		}
		return polls + 1 // messages keep arriving while it is away
	}
	n := missingAtReconnect(connects.Load, 0, missing, func() bool { return polls < 10 })
	if n != 3 {
		t.Fatalf("missing at the reconnect %d, want 3 (the last count taken while away)", n)
	}
	// Never back before the deadline: the last count.
	connects.Store(0)
	polls = 0
	if n := missingAtReconnect(connects.Load, 0, func() int { polls++; return 2 }, func() bool { return polls < 3 }); n != 2 {
		t.Fatalf("never back: %d, want 2", n)
	}
}

func TestHarnessID(t *testing.T) {
	for _, c := range []struct{ id, text, want string }{
		{"mqtt-0a1b", "m mq-u_mqtt1-m-9", "mq-u_mqtt1-m-9"},
		{"mqtt-0a1b", "m u_01-d0-2", "mqtt-0a1b"}, // not a harness MQTT send
		{"u_01-d0-2", "m mq-x", "u_01-d0-2"},      // an SDK send keeps its client id
	} {
		if got := harnessID(c.id, c.text); got != c.want {
			t.Errorf("harnessID(%q, %q) = %q, want %q", c.id, c.text, got, c.want)
		}
	}
}
