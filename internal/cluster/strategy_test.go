package cluster

import (
	"log/slog"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

// staticRegistry is a Registry holding the given gateways, fresh now.
func staticRegistry(gws ...*clusterpb.GatewayInfo) *Registry {
	r := &Registry{ttl: time.Minute, log: slog.New(slog.DiscardHandler), gateways: map[string]gwState{}, buried: map[string]int64{}}
	for _, g := range gws {
		r.gateways[g.Id] = gwState{info: g, seen: time.Now()}
	}
	return r
}

func gw(id string, conns int64) *clusterpb.GatewayInfo {
	return &clusterpb.GatewayInfo{Id: id, Conns: conns}
}

func TestPickRoundRobinCycles(t *testing.T) {
	r := staticRegistry(gw("a", 0), gw("b", 0), gw("c", 0))
	count := map[string]int{}
	for i := range 300 {
		g, err := r.Pick(RoundRobin, int64(i%7))
		if err != nil {
			t.Fatal(err)
		}
		count[g.Id]++
	}
	for _, id := range []string{"a", "b", "c"} {
		if count[id] != 100 {
			t.Fatalf("round-robin counts %v, want 100 each", count)
		}
	}
}

func TestPickRandomCoversLiveOnly(t *testing.T) {
	r := staticRegistry(gw("a", 0), gw("b", 0), &clusterpb.GatewayInfo{Id: "d", Draining: true})
	r.gateways["old"] = gwState{info: gw("old", 0), seen: time.Now().Add(-2 * time.Minute)}
	count := map[string]int{}
	for i := range 1000 {
		g, err := r.Pick(Random, int64(i))
		if err != nil {
			t.Fatal(err)
		}
		count[g.Id]++
	}
	if count["a"] < 300 || count["b"] < 300 || len(count) != 2 {
		t.Fatalf("random picks %v, want only a and b, roughly even", count)
	}
}

func TestPickHashIsStableAndMovesOnlyTheDeadGatewaysUsers(t *testing.T) {
	r := staticRegistry(gw("a", 0), gw("b", 0), gw("c", 0))
	before := map[int64]string{}
	count := map[string]int{}
	for u := int64(1); u <= 3000; u++ {
		g, _ := r.Pick(ConsistentHash, u)
		again, _ := r.Pick(ConsistentHash, u)
		if g.Id != again.Id {
			t.Fatalf("user %d: %s then %s", u, g.Id, again.Id)
		}
		before[u] = g.Id
		count[g.Id]++
	}
	for id, n := range count {
		if n < 700 {
			t.Fatalf("hash spread %v: %s has too few users", count, id)
		}
	}
	r.forget("b", true)
	for u, was := range before {
		g, _ := r.Pick(ConsistentHash, u)
		if was != "b" && g.Id != was {
			t.Fatalf("user %d moved from live %s to %s when b died", u, was, g.Id)
		}
		if g.Id == "b" {
			t.Fatalf("user %d routed to dead b", u)
		}
	}
}

// The review found sequential ids 1–6 all on one of two gateways and 1–100
// split 10/90: every gateway must get its fair share of ids 1–10,000
// within ±5 %, for the gateway ids operators use (--gateway-id) and for
// the random ones a gateway picks by default.
func TestPickHashSpreadsSequentialIDsEvenly(t *testing.T) {
	const users = 10000
	for _, ids := range [][]string{
		{"gw-1", "gw-2"}, {"gw-1", "gw-2", "gw-3"}, {"gw-1", "gw-2", "gw-3", "gw-4"},
		{"a", "b"}, {"a", "b", "c"}, {"a", "b", "c", "d"},
		{"gw-a", "gw-b"}, {"gw-a", "gw-b", "gw-c"}, {"gw-a", "gw-b", "gw-c", "gw-d"},
		{"7f3a9c21e4b0", "0c5d2e8f1a97"}, {"7f3a9c21e4b0", "0c5d2e8f1a97", "b41e77d0c3f2"},
		{"7f3a9c21e4b0", "0c5d2e8f1a97", "b41e77d0c3f2", "5a8e0b6d9c14"},
	} {
		var gws []*clusterpb.GatewayInfo
		for _, id := range ids {
			gws = append(gws, gw(id, 0))
		}
		r := staticRegistry(gws...)
		count := map[string]int{}
		for u := int64(1); u <= users; u++ {
			g, err := r.Pick(ConsistentHash, u)
			if err != nil {
				t.Fatal(err)
			}
			count[g.Id]++
		}
		fair := float64(users) / float64(len(ids))
		for _, id := range ids {
			if n := float64(count[id]); n < fair*0.95 || n > fair*1.05 {
				t.Errorf("gateways %v: counts %v, want each within ±5%% of %.0f", ids, count, fair)
				break
			}
		}
	}
}

// A joining gateway takes only its fair share, and only from the others:
// nobody moves between the gateways that were there before.
func TestPickHashJoinMovesOnlyTheNewGatewaysShare(t *testing.T) {
	r := staticRegistry(gw("gw-1", 0), gw("gw-2", 0), gw("gw-3", 0))
	before := map[int64]string{}
	for u := int64(1); u <= 10000; u++ {
		g, _ := r.Pick(ConsistentHash, u)
		before[u] = g.Id
	}
	r.gateways["gw-4"] = gwState{info: gw("gw-4", 0), seen: time.Now()}
	moved := 0
	for u, was := range before {
		g, _ := r.Pick(ConsistentHash, u)
		if g.Id != was {
			if g.Id != "gw-4" {
				t.Fatalf("user %d moved from %s to %s when gw-4 joined", u, was, g.Id)
			}
			moved++
		}
	}
	if moved < 2375 || moved > 2625 {
		t.Fatalf("%d of 10000 users moved to gw-4, want about a quarter", moved)
	}
}

func TestPickLeastConns(t *testing.T) {
	r := staticRegistry(gw("a", 500), gw("b", 20), gw("c", 300), &clusterpb.GatewayInfo{Id: "d", Conns: 1, Draining: true})
	for i := range 10 {
		if g, _ := r.Pick(LeastConns, int64(i)); g.Id != "b" {
			t.Fatalf("least-conns picked %s, want b", g.Id)
		}
	}
}

func TestPickNoGateway(t *testing.T) {
	r := staticRegistry()
	for _, s := range []Strategy{RoundRobin, Random, ConsistentHash, LeastConns} {
		if _, err := r.Pick(s, 1); err != ErrNoGateway {
			t.Errorf("%s on an empty registry: %v, want ErrNoGateway", s, err)
		}
	}
}

func TestValidGatewayID(t *testing.T) {
	for id, want := range map[string]bool{
		"gw-1": true, "GW_a9": true, "": false, "a.b": false, "a*": false, "a>": false, "a b": false,
		"0123456789012345678901234567890123456789012345678901234567890123":  true,
		"01234567890123456789012345678901234567890123456789012345678901234": false,
	} {
		if got := ValidGatewayID(id); got != want {
			t.Errorf("ValidGatewayID(%q) = %v, want %v", id, got, want)
		}
	}
}
