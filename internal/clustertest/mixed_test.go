package clustertest

import (
	"reflect"
	"strings"
	"testing"
)

func TestDrawScheduleReplaysFromItsSeed(t *testing.T) {
	a := DrawSchedule(42, 20, 3, 2, true)
	if b := DrawSchedule(42, 20, 3, 2, true); !reflect.DeepEqual(a, b) {
		t.Fatalf("one seed, two schedules:\n%v\n%v", a, b)
	}
	if c := DrawSchedule(43, 20, 3, 2, true); reflect.DeepEqual(a, c) {
		t.Fatal("seeds 42 and 43 drew the same 20 faults")
	}
	if len(a) != 20 {
		t.Fatalf("drew %d faults, want 20", len(a))
	}
	for _, f := range a {
		if f.Target < 0 || f.Target >= 3 || f.Gap <= 0 || f.For <= 0 || f.String() == "" {
			t.Errorf("bad fault %+v", f)
		}
		if strings.Contains(f.Kind, "logic") && f.Target >= 2 {
			t.Errorf("%s targets logic-%d of 2", f.Kind, f.Target)
		}
	}
}

func TestDrawScheduleWithoutHooksHasNoCrashPoints(t *testing.T) {
	for _, f := range DrawSchedule(7, 200, 3, 2, false) {
		if strings.HasPrefix(f.Kind, "crash-") {
			t.Fatalf("a crash point without a faulthooks binary: %v", f)
		}
	}
}

func TestSoakFigureTakesTheLeastOfEachThird(t *testing.T) {
	var samples []map[string]Usage
	for i, g := range []int{50, 90, 60, 140, 55, 70, 120, 58, 61} { // requests in flight, no leak
		samples = append(samples, map[string]Usage{"logic-0": {Goroutines: g, FDs: 20, RSS: 64 << 20}})
		if i == 4 {
			samples[i]["gw-0"] = Usage{Goroutines: 10} // restarted meanwhile
		}
	}
	f, ok := soakFigure("logic-0", samples)
	if !ok || f.Start.Goroutines != 50 || f.End.Goroutines != 58 || f.Grew() != "" {
		t.Fatalf("noisy but flat: %+v (ok %v), grew %q", f, ok, f.Grew())
	}
	if _, ok := soakFigure("gw-0", samples); ok {
		t.Fatal("a process missing from some samples got a figure")
	}
	leak := SoakFigure{Start: Usage{Goroutines: 100, FDs: 20, RSS: 64 << 20}, End: Usage{Goroutines: 400, FDs: 90, RSS: 256 << 20}}
	if g := leak.Grew(); !strings.Contains(g, "goroutines 100 → 400") || !strings.Contains(g, "file descriptors 20 → 90") || !strings.Contains(g, "memory 64 → 256 MiB") {
		t.Fatalf("a leak of all three: %q", g)
	}
}
