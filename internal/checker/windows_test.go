package checker

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// churn: group g of alice (a1, a2) and bob (b1) from seq 1; carol (c1)
// joins at 3; bob leaves at 5 and comes back at 7. Every device shows
// exactly its user's windows: bob [1,5] and [7,…], carol [3,…].
//
//	1 created   2 m1 (a1)   3 carol joined   4 m2 (b1)
//	5 bob left  6 m3 (c1)   7 bob joined     8 m4 (a1)
type churnRun struct {
	views map[string][]uint64 // device → seqs it shows
}

var churnMsgs = map[uint64]struct{ id, dev, user string }{
	2: {"m1", "a1", "alice"}, 4: {"m2", "b1", "bob"}, 6: {"m3", "c1", "carol"}, 8: {"m4", "a1", "alice"},
}

func newChurn() *churnRun {
	return &churnRun{
		views: map[string][]uint64{
			"a1": {1, 3, 4, 5, 6, 7}, "a2": {1, 2, 3, 4, 5, 6, 7, 8},
			"b1": {1, 2, 3, 5, 7, 8}, "c1": {3, 4, 5, 7, 8},
		},
	}
}

func (c *churnRun) build() *Recorder {
	r := New()
	for _, d := range [][2]string{{"a1", "alice"}, {"a2", "alice"}, {"b1", "bob"}, {"c1", "carol"}} {
		r.Device(d[0], d[1], false)
	}
	for seq, m := range churnMsgs {
		at := t0.Add(time.Duration(seq) * time.Second)
		r.Invoke(m.id, m.dev, []string{"alice", "bob", "carol"}, at)
		r.Acked(m.id, "g", seq, at.Add(time.Millisecond))
	}
	r.Member("g", "alice", true, 1)
	r.Member("g", "bob", true, 1)
	r.Member("g", "carol", true, 3)
	r.Member("g", "bob", false, 5)
	r.Member("g", "bob", true, 7)
	for _, dev := range []string{"a1", "a2", "b1", "c1"} {
		for _, seq := range c.views[dev] {
			c.show(r, dev, seq)
		}
	}
	return r
}

func (c *churnRun) show(r *Recorder, dev string, seq uint64) {
	at := t0.Add(time.Duration(seq)*time.Second + 5*time.Millisecond)
	if m, ok := churnMsgs[seq]; ok {
		r.Shown(dev, Message{Conv: "g", Seq: seq, ClientMsgID: m.id, Sender: m.user, Text: m.id}, Live, at)
		return
	}
	r.Shown(dev, Message{Conv: "g", Seq: seq, Text: "event"}, Live, at) // a group event
}

func TestMembershipWindows(t *testing.T) {
	checkReports(t, []reportCase{
		{"every device shows exactly its windows", func() *Recorder { return newChurn().build() },
			func(r *Report) bool { return r.OK() && r.Gaps == 0 && r.Lost == 0 && r.Acknowledged == 4 }, "all zero"},
		{"a message shown after the user left", func() *Recorder {
			c := newChurn()
			c.views["b1"] = []uint64{1, 2, 3, 5, 6, 7, 8} // m3 was sent while bob was out
			return c.build()
		}, func(r *Report) bool { return r.OutsideWindow == 1 && !r.OK() }, "outside window 1"},
		{"history from before the user joined", func() *Recorder {
			c := newChurn()
			c.views["c1"] = []uint64{1, 2, 3, 4, 5, 7, 8}
			return c.build()
		}, func(r *Report) bool { return r.OutsideWindow == 2 }, "outside window 2 (seqs 1 and 2 on c1)"},
		{"a message missing inside a window", func() *Recorder {
			c := newChurn()
			c.views["c1"] = []uint64{3, 5, 7, 8} // no m2
			return c.build()
		}, func(r *Report) bool { return r.Lost == 1 && r.Gaps == 1 && r.OutsideWindow == 0 }, "lost 1, gap 1"},
		{"the second window missing", func() *Recorder {
			c := newChurn()
			c.views["b1"] = []uint64{1, 2, 3, 5} // nothing after coming back
			return c.build()
		}, func(r *Report) bool { return r.Lost == 1 && r.Gaps == 0 }, "lost 1 (m4 on b1)"},
		{"a send ACKed from outside the window", func() *Recorder {
			c := newChurn()
			r := c.build()
			r.Invoke("late", "b1", []string{"alice", "bob", "carol"}, t0.Add(6*time.Second))
			r.Acked("late", "g", 9, t0.Add(7*time.Second)) // stored as if bob were a member
			r.Member("g", "bob", false, 9)                 // then bob left again...
			r.Member("g", "bob", true, 10)                 // ...and came back: 9 is inside [7,9]
			r.Invoke("out", "b1", []string{"alice", "bob", "carol"}, t0.Add(6*time.Second))
			r.Acked("out", "g", 6, t0.Add(7*time.Second)) // seq 6, while bob was out: also divergent with m3
			return r
		}, func(r *Report) bool { return r.OutsideWindow == 1 }, "outside window 1 (the ACK at 6)"},
		{"a fresh device of a current member sees every window", func() *Recorder {
			r := newChurn().build()
			r.Device("b-fresh", "bob", true)
			for _, seq := range []uint64{1, 2, 3, 4, 5, 7} { // no m4
				newChurn().show(r, "b-fresh", seq)
			}
			return r
		}, func(r *Report) bool { return r.Lost == 1 }, "lost 1"},
		{"a group the user left is not brought to a device that never had it", func() *Recorder {
			r := newChurn().build()
			r.Device("c2", "carol", false) // carol's second device, away the whole time
			r.Member("g", "carol", false, 9)
			for _, d := range []string{"a1", "a2", "b1", "c1"} {
				r.Shown(d, Message{Conv: "g", Seq: 9, Text: "event"}, Live, t0.Add(9*time.Second))
			}
			return r
		}, func(r *Report) bool { return r.OK() && r.Lost == 0 }, "all zero"},
		{"...but to one that had it", func() *Recorder {
			r := newChurn().build()
			r.Device("c2", "carol", false)
			r.Member("g", "carol", false, 9)
			newChurn().show(r, "c2", 3)
			return r
		}, func(r *Report) bool { return r.Lost == 3 && r.OutsideWindow == 0 }, "lost 3 (m2, m3, m4 on c2)"},
	})
}

func TestMissingFollowsWindows(t *testing.T) {
	c := newChurn()
	c.views["b1"] = []uint64{1, 2, 3, 5} // m4 not yet on b1
	r := c.build()
	if got := r.MissingOn("b1"); got != 1 {
		t.Fatalf("MissingOn(b1) = %d, want 1 (m4; m3 is outside bob's windows)", got)
	}
	if got := r.MissingOn("c1"); got != 0 {
		t.Fatalf("MissingOn(c1) = %d, want 0 (m1 is before carol joined)", got)
	}
	if got := r.Missing(t0.Add(time.Hour)); got != 1 {
		t.Fatalf("Missing = %d, want 1", got)
	}
	if got := r.AckedFor("carol", t0.Add(time.Hour)); len(got) != 3 || got["m1"] {
		t.Fatalf("AckedFor(carol) = %v, want m2, m3, m4", got)
	}
	r.Member("g", "carol", false, 9) // a new device of carol's no longer syncs g
	if got := r.AckedFor("carol", t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("AckedFor(carol) after she left = %v, want none", got)
	}
}

func TestMembershipHistoryReplays(t *testing.T) {
	c := newChurn()
	var hist bytes.Buffer
	b2 := New()
	_ = b2.Record(&hist)
	for _, d := range [][2]string{{"a1", "alice"}, {"a2", "alice"}, {"b1", "bob"}, {"c1", "carol"}} {
		b2.Device(d[0], d[1], false)
	}
	b2.Member("g", "bob", true, 1)
	b2.Member("g", "bob", false, 5)
	b2.Member("g", "bob", false, 5) // recorded twice: one line
	c.show(b2, "b1", 6)
	_ = b2.Record(nil)
	if n := strings.Count(hist.String(), `"ev":"member"`); n != 2 {
		t.Fatalf("want 2 member lines, got %d:\n%s", n, hist.String())
	}
	back, err := Replay(bytes.NewReader(hist.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := back.Check(), b2.Check(); !reflect.DeepEqual(got, want) || got.OutsideWindow != 1 {
		t.Fatalf("replayed report differs or misses the outside-window show:\n got %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"ev":"member","conv":"g","user":"bob","seq":1}`, `op "": want join or leave`},
		{`{"ev":"member","conv":"g","user":"bob","op":"join"}`, "seq is missing"},
		{`{"ev":"member","user":"bob","op":"join","seq":1}`, "conv is missing"},
	} {
		if _, err := Replay(strings.NewReader(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Replay(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
}
