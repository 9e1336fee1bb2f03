package checker

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

// world: alice (devices a1, a2) and bob (b1) in conversation "c".
func world() *Recorder {
	r := New()
	r.Device("a1", "alice", false)
	r.Device("a2", "alice", false)
	r.Device("b1", "bob", false)
	return r
}

var ab = []string{"alice", "bob"}

// sendOK records a send from device dev with id, acked as seq.
func sendOK(r *Recorder, dev, id string, seq uint64) {
	at := t0.Add(time.Duration(seq) * time.Second)
	r.Invoke(id, dev, ab, at)
	r.Acked(id, "c", seq, at.Add(time.Millisecond))
}

func show(r *Recorder, dev, id string, seq uint64, sender string) {
	r.Shown(dev, Message{Conv: "c", Seq: seq, ClientMsgID: id, Sender: sender, Text: id}, Live, t0.Add(time.Duration(seq)*time.Second+5*time.Millisecond))
}

// healthy: alice's a1 sends m1, m2; bob sends m3. Every other device shows
// everything; a1 does not see its own sends.
func healthy() *Recorder {
	r := world()
	sendOK(r, "a1", "m1", 1)
	sendOK(r, "a1", "m2", 2)
	sendOK(r, "b1", "m3", 3)
	for _, d := range []string{"a2", "b1"} {
		show(r, d, "m1", 1, "alice")
		show(r, d, "m2", 2, "alice")
	}
	show(r, "a1", "m3", 3, "bob")
	show(r, "a2", "m3", 3, "bob")
	return r
}

// reportCase is a run built by build whose report must satisfy want;
// fig says what want wants, for the failure.
type reportCase struct {
	name  string
	build func() *Recorder
	want  func(*Report) bool
	fig   string
}

func checkReports(t *testing.T, tests []reportCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep := tc.build().Check()
			if !tc.want(rep) {
				var b strings.Builder
				rep.Print(&b)
				t.Fatalf("want %s; got\n%s", tc.fig, b.String())
			}
		})
	}
}

func TestCheck(t *testing.T) {
	checkReports(t, []reportCase{
		{"healthy run", healthy, func(r *Report) bool {
			return r.OK() && r.Attempted == 3 && r.Acknowledged == 3 && r.Ack.N == 3 && r.Live.N == 6
		}, "all zero"},
		{"lost on one device", func() *Recorder {
			r := world()
			sendOK(r, "a1", "m1", 1)
			show(r, "b1", "m1", 1, "alice")
			return r // a2 never shows m1
		}, func(r *Report) bool { return r.Lost == 1 && r.LostPairs == 1 && !r.OK() }, "lost 1"},
		{"fresh device must see everything", func() *Recorder {
			r := healthy()
			r.Device("alice-fresh", "alice", true)
			show(r, "alice-fresh", "m1", 1, "alice")
			show(r, "alice-fresh", "m2", 2, "alice")
			return r // missing m3
		}, func(r *Report) bool { return r.Lost == 1 }, "lost 1"},
		{"shown twice", func() *Recorder {
			r := healthy()
			show(r, "b1", "m2", 2, "alice")
			return r
		}, func(r *Report) bool { return r.DupShown == 1 && r.OutOfOrder == 1 }, "dup shown 1 (and the repeat is out of order)"},
		{"one id stored twice", func() *Recorder {
			r := healthy()
			r.Acked("m1", "c", 4, t0.Add(time.Hour)) // a retry answered with a new seq
			return r
		}, func(r *Report) bool { return r.DupStored >= 1 }, "dup stored"},
		{"one id shown at two seqs", func() *Recorder {
			r := healthy()
			show(r, "b1", "m1", 4, "alice")
			return r
		}, func(r *Report) bool { return r.DupStored == 1 && r.DupShown == 1 }, "dup stored and shown"},
		{"display out of order", func() *Recorder {
			r := world()
			sendOK(r, "a1", "m1", 1)
			sendOK(r, "a1", "m2", 2)
			for _, d := range []string{"a2", "b1"} {
				show(r, d, "m2", 2, "alice")
				show(r, d, "m1", 1, "alice")
			}
			return r
		}, func(r *Report) bool { return r.OutOfOrder == 2 && r.Gaps == 0 && r.Lost == 0 }, "out of order 2"},
		{"sender order broken", func() *Recorder {
			r := world()
			r.Invoke("m1", "a1", ab, t0)
			r.Acked("m1", "c", 2, t0.Add(time.Millisecond))
			r.Invoke("m2", "a1", ab, t0.Add(time.Second))
			r.Acked("m2", "c", 1, t0.Add(time.Second+time.Millisecond))
			for _, d := range []string{"a2", "b1"} {
				show(r, d, "m2", 1, "alice")
				show(r, d, "m1", 2, "alice")
			}
			return r
		}, func(r *Report) bool { return r.OutOfOrder == 1 }, "out of order 1"},
		{"gap", func() *Recorder {
			r2 := world()
			sendOK(r2, "b1", "x1", 1)
			sendOK(r2, "b1", "x2", 2)
			show(r2, "a1", "x1", 1, "bob")
			show(r2, "a1", "x2", 2, "bob")
			show(r2, "a2", "x2", 2, "bob")
			return r2
		}, func(r *Report) bool { return r.Gaps == 1 && r.Lost == 1 }, "gap 1"},
		{"own sends are no gap", func() *Recorder {
			r := world()
			sendOK(r, "a1", "m1", 1)
			sendOK(r, "b1", "m2", 2)
			show(r, "a1", "m2", 2, "bob")
			show(r, "a2", "m1", 1, "alice")
			show(r, "a2", "m2", 2, "bob")
			show(r, "b1", "m1", 1, "alice")
			return r
		}, func(r *Report) bool { return r.OK() }, "all zero"},
		{"divergent", func() *Recorder {
			r := healthy()
			r.Shown("a2", Message{Conv: "c", Seq: 4, ClientMsgID: "m9", Sender: "bob", Text: "x"}, Live, t0)
			r.Shown("b1", Message{Conv: "c", Seq: 4, ClientMsgID: "m9", Sender: "bob", Text: "y"}, Live, t0)
			r.Invoke("m9", "b1", ab, t0)
			return r
		}, func(r *Report) bool { return r.Divergent == 1 }, "divergent 1"},
		{"unexpected", func() *Recorder {
			r := healthy()
			show(r, "b1", "ghost", 4, "alice")
			return r
		}, func(r *Report) bool { return r.Unexpected == 1 }, "unexpected 1"},
		{"unknown and recovered", func() *Recorder {
			r := healthy()
			r.Invoke("u1", "a1", ab, t0)
			r.Ended("u1", Unknown)
			r.Invoke("u2", "a1", ab, t0)
			r.Ended("u2", Unknown)
			show(r, "b1", "u2", 4, "alice")
			show(r, "a2", "u2", 4, "alice")
			r.Invoke("f1", "a1", ab, t0)
			r.Ended("f1", Failed)
			return r
		}, func(r *Report) bool { return r.OK() && r.Unknown == 1 && r.Recovered == 1 && r.Failed == 1 }, "unknown 1 recovered 1 failed 1"},
		{"receipt push moving back", func() *Recorder {
			r := healthy()
			r.Receipt("a1", "c", "bob", false, 3)
			r.Receipt("a1", "c", "bob", false, 2)
			return r
		}, func(r *Report) bool { return r.ReceiptViolations == 0 && r.ReceiptPushesBack == 1 }, "pushes back 1, no violation"},
		{"server-made messages", func() *Recorder {
			r := healthy()
			r.Shown("b1", Message{Conv: "g", Seq: 1, Text: "created"}, Live, t0)
			r.Shown("a1", Message{Conv: "g", Seq: 1, Text: "created"}, Live, t0)
			r.Shown("a1", Message{Conv: "h", Seq: 1, Text: "created"}, Live, t0)
			return r
		}, func(r *Report) bool { return r.OK() }, "all zero"},
		{"server-made message shown twice", func() *Recorder {
			r := healthy()
			r.Shown("b1", Message{Conv: "g", Seq: 1, Text: "created"}, Live, t0)
			r.Shown("b1", Message{Conv: "g", Seq: 1, Text: "created"}, Live, t0)
			return r
		}, func(r *Report) bool { return r.DupShown == 1 }, "dup shown 1"},
		{"read beyond delivered", func() *Recorder {
			r := healthy()
			r.Cursors(Cursor{User: "bob", Conv: "c", Last: 3, Delivered: 2, Read: 3})
			r.Cursors(Cursor{User: "alice", Conv: "c", Last: 3, Delivered: 3, Read: 3, HasPeer: true, PeerDelivered: 4})
			return r
		}, func(r *Report) bool { return r.ReceiptViolations == 2 }, "receipt 2"},
	})
}

func TestMissing(t *testing.T) {
	r := world()
	sendOK(r, "a1", "m1", 1)
	if got := r.Missing(t0.Add(time.Hour)); got != 2 {
		t.Fatalf("Missing = %d, want 2 (a2 and b1)", got)
	}
	if got := r.Missing(t0); got != 0 {
		t.Fatalf("Missing before the ACK = %d, want 0", got)
	}
	show(r, "b1", "m1", 1, "alice")
	if got := r.MissingOn("a2"); got != 1 {
		t.Fatalf("MissingOn(a2) = %d, want 1", got)
	}
	if got := r.MissingByDevice(t0.Add(time.Hour)); len(got) != 1 || got["a2"] != 1 {
		t.Fatalf("MissingByDevice = %v, want a2: 1", got)
	}
	show(r, "a2", "m1", 1, "alice")
	if got := r.Missing(t0.Add(time.Hour)); got != 0 {
		t.Fatalf("Missing = %d, want 0", got)
	}
	if got := r.MissingByDevice(t0.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("MissingByDevice = %v, want none", got)
	}
	r.Device("b-fresh", "bob", true)
	if got := r.MissingByDevice(t0.Add(time.Hour)); len(got) != 1 || got["b-fresh"] != 1 {
		t.Fatalf("MissingByDevice = %v, want b-fresh: 1", got)
	}
	if got := r.Missing(t0.Add(time.Hour)); got != 0 {
		t.Fatalf("Missing counts fresh devices: %d", got)
	}
	if got := r.MissingOn("b-fresh"); got != 1 {
		t.Fatalf("MissingOn(fresh) = %d, want 1", got)
	}
}

func TestPrint(t *testing.T) {
	r := healthy()
	r.Recovered("kill -9 gateway", 1500*time.Millisecond, true)
	var b strings.Builder
	r.Check().Print(&b)
	for _, want := range []string{"| attempted / acknowledged | 3 / 3 |", "| lost | 0 ✓ |", "kill -9 gateway 1.5s"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestWindow(t *testing.T) {
	r := world()
	r.Invoke("early", "a1", ab, t0.Add(-time.Second))
	r.Acked("early", "c", 1, t0)
	r.Invoke("slow", "a1", ab, t0)
	r.Acked("slow", "c", 2, t0.Add(3*time.Second))
	r.Invoke("fast", "a1", ab, t0.Add(time.Second))
	r.Acked("fast", "c", 3, t0.Add(time.Second+time.Millisecond))
	r.Invoke("lost", "a1", ab, t0.Add(2*time.Second))
	r.Ended("lost", Unknown)
	invoked, acked, slowest := r.Window(t0, t0.Add(2*time.Second+1))
	if invoked != 3 || acked != 2 || slowest != 3*time.Second {
		t.Fatalf("Window = %d, %d, %v; want 3, 2, 3s", invoked, acked, slowest)
	}
}

// The same client id sent from two devices (through two gateways): one
// message, shown by neither sender, and both ACKs must name one seq.
func TestSameIDFromTwoDevices(t *testing.T) {
	build := func(secondSeq uint64) *Recorder {
		r := world()
		r.Invoke("m1", "a1", ab, t0)
		r.Invoke("m1", "a2", ab, t0)
		r.Acked("m1", "c", 1, t0.Add(time.Millisecond))
		r.Acked("m1", "c", secondSeq, t0.Add(2*time.Millisecond))
		show(r, "b1", "m1", 1, "alice")
		sendOK(r, "b1", "m2", 2)
		show(r, "a1", "m2", 2, "bob")
		show(r, "a2", "m2", 2, "bob")
		return r
	}
	if rep := build(1).Check(); !rep.OK() || rep.Attempted != 2 || rep.Lost != 0 || rep.Gaps != 0 {
		t.Fatalf("one id from two devices, one seq: %+v", rep)
	}
	if r := build(1); r.MissingOn("a2") != 0 || r.Missing(t0.Add(time.Hour)) != 0 {
		t.Fatalf("a2 sent m1 itself and must not be waited on: missing on a2 %d, in all %d", r.MissingOn("a2"), r.Missing(t0.Add(time.Hour)))
	}
	if rep := build(3).Check(); rep.DupStored == 0 {
		t.Fatalf("one id ACKed at two seqs from two devices: want duplicated stored, got %+v", rep)
	}
}

func TestAckedForAndLiveLatency(t *testing.T) {
	r := healthy() // m1, m2 from alice at t0+1s, +2s; m3 from bob at +3s; shown 5 ms later
	if got := r.AckedFor("bob", t0.Add(2500*time.Millisecond)); len(got) != 2 || !got["m1"] || !got["m2"] {
		t.Fatalf("AckedFor(bob, before m3) = %v, want m1 and m2", got)
	}
	l := r.LiveLatency(t0, t0.Add(time.Hour), func(id string) bool { return id == "m3" })
	if l.N != 4 || l.P50 != 5*time.Millisecond {
		t.Fatalf("LiveLatency without m3: %+v, want 4 displays at 5ms", l)
	}
	if a := r.AckLatency(t0, t0.Add(2500*time.Millisecond)); a.N != 2 || a.Max != time.Millisecond {
		t.Fatalf("AckLatency of m1, m2: %+v, want 2 at 1ms", a)
	}
	if l := r.LiveLatency(t0.Add(10*time.Second), t0.Add(time.Hour), nil); l.N != 0 {
		t.Fatalf("LiveLatency of an empty window: %+v", l)
	}
}

// A client id sent again on purpose an hour after its ACK (scenario 10,
// "again later") is no ACK that took an hour; a send that was not ACKed
// before it is invoked again is timed from the later invoke.
func TestAckLatencyOfResends(t *testing.T) {
	r := world()
	r.Invoke("m1", "a1", ab, t0)
	r.Acked("m1", "c", 1, t0.Add(time.Millisecond))
	r.Invoke("m1", "a1", ab, t0.Add(time.Hour))
	r.Acked("m1", "c", 1, t0.Add(time.Hour+2*time.Millisecond))
	r.Invoke("m2", "a1", ab, t0.Add(time.Second))
	r.Ended("m2", Unknown)
	r.Invoke("m2", "a1", ab, t0.Add(time.Hour))
	r.Acked("m2", "c", 2, t0.Add(time.Hour+3*time.Millisecond))
	show(r, "a2", "m1", 1, "alice")
	show(r, "b1", "m1", 1, "alice")
	show(r, "a2", "m2", 2, "alice")
	show(r, "b1", "m2", 2, "alice")
	rep := r.Check()
	if !rep.OK() || rep.Ack.N != 2 || rep.Ack.Max != 3*time.Millisecond {
		t.Fatalf("ACK latency of re-sent ids: %+v, want 2 ACKs, the slowest 3ms", rep.Ack)
	}
}

// An ACK without a seq (MQTT's PUBACK) takes its place from the views: a
// message shown nowhere is lost, one shown at two seqs is a stored
// duplicate, and the sender's own seqs are not gaps on its other devices.
func TestAckedUnsequenced(t *testing.T) {
	pub := func(r *Recorder, id string, sec int) {
		at := t0.Add(time.Duration(sec) * time.Second)
		r.Invoke(id, "b1", ab, at)
		r.AckedUnsequenced(id, at.Add(time.Millisecond))
	}
	t.Run("healthy", func(t *testing.T) {
		r := world()
		show(r, "a1", "q1", 1, "bob") // shown before the PUBACK came
		pub(r, "q1", 1)
		pub(r, "q2", 2)
		show(r, "a1", "q2", 2, "bob")
		show(r, "a2", "q1", 1, "bob")
		show(r, "a2", "q2", 2, "bob")
		sendOK(r, "a1", "m3", 3)
		show(r, "b1", "m3", 3, "alice")
		show(r, "a2", "m3", 3, "alice")
		rep := r.Check()
		if !rep.OK() || rep.Acknowledged != 3 || rep.Ack.N != 3 {
			t.Fatalf("healthy run: %v %+v", rep.Violations(), rep)
		}
		if got := r.Missing(t0.Add(time.Hour)); got != 0 {
			t.Fatalf("Missing = %d, want 0", got)
		}
	})
	t.Run("lost", func(t *testing.T) {
		r := world()
		pub(r, "q1", 1)
		if got := r.Missing(t0.Add(time.Hour)); got != 2 {
			t.Fatalf("Missing = %d, want 2 (a1, a2)", got)
		}
		if rep := r.Check(); rep.Lost != 1 || rep.LostPairs != 2 {
			t.Fatalf("a PUBACKed message shown nowhere: lost %d (%d pairs), want 1 (2)", rep.Lost, rep.LostPairs)
		}
	})
	t.Run("stored twice", func(t *testing.T) {
		r := world()
		pub(r, "q1", 1)
		show(r, "a1", "q1", 1, "bob")
		show(r, "a2", "q1", 2, "bob")
		if rep := r.Check(); rep.DupStored != 1 {
			t.Fatalf("one id at two seqs: duplicated stored %d, want 1", rep.DupStored)
		}
	})
	t.Run("sender order", func(t *testing.T) {
		r := world()
		pub(r, "q1", 1)
		pub(r, "q2", 2)
		for _, d := range []string{"a1", "a2"} {
			show(r, d, "q2", 1, "bob")
			show(r, d, "q1", 2, "bob")
		}
		if rep := r.Check(); rep.OutOfOrder != 1 {
			t.Fatalf("the later send at the lower seq: out of order %d, want 1", rep.OutOfOrder)
		}
	})
}

func TestOutcomeOf(t *testing.T) {
	r := world()
	if o := r.OutcomeOf("m1"); o != Pending {
		t.Fatalf("never invoked: %v", o)
	}
	r.Invoke("m1", "a1", ab, t0)
	r.Invoke("m2", "a1", ab, t0)
	if o := r.OutcomeOf("m1"); o != Pending {
		t.Fatalf("invoked: %v", o)
	}
	r.Acked("m1", "c", 1, t0)
	r.Ended("m2", Failed)
	if o, p := r.OutcomeOf("m1"), r.OutcomeOf("m2"); o != OK || p != Failed {
		t.Fatalf("acked: %v, refused: %v", o, p)
	}
}
