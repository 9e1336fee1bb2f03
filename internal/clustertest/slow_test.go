package clustertest

import (
	"testing"

	"github.com/magpie-im/magpie/client"
)

// The slow consumer's reconnected device counts what AckedFor wants by
// the checker's ids: an MQTT send comes back under the gateway's key and
// is known by its text.
func TestShownIDsKnowMQTTSendsByTheirHarnessID(t *testing.T) {
	want := map[string]bool{"mq-u1_mqtt0-m-3": true, "u1_01-d0-5": true, "u1_02-d1-7": true}
	got := newShownIDs()
	got.add(client.Message{ClientMsgID: "mqtt-0a1b2c", Text: "m mq-u1_mqtt0-m-3"})
	got.add(client.Message{ClientMsgID: "u1_01-d0-5", Text: "m u1_01-d0-5"})
	if n := got.missing(want); n != 1 {
		t.Fatalf("missing %d, want 1 (u1_02-d1-7 only)", n)
	}
	got.add(client.Message{ClientMsgID: "u1_02-d1-7", Text: "m u1_02-d1-7"})
	if n := got.missing(want); n != 0 {
		t.Fatalf("missing %d after every message was shown", n)
	}
	// A stored key whose text is not a harness MQTT send stays its own id.
	other := newShownIDs()
	other.add(client.Message{ClientMsgID: "mqtt-ffff", Text: "hello"})
	if n := other.missing(map[string]bool{"mqtt-ffff": true}); n != 0 {
		t.Fatalf("an MQTT key with a foreign text: missing %d", n)
	}
}
