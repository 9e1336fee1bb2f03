package checker

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

// recordAll records a run that uses every kind of event, with violations
// of several figures, into a history.
func recordAll(t *testing.T) (*Recorder, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	r := New()
	if err := r.Record(&buf); err != nil {
		t.Fatal(err)
	}
	r.Device("a1", "alice", false)
	r.Device("a2", "alice", false)
	r.Device("b1", "bob", false)
	sendOK(r, "a1", "m1", 1)
	sendOK(r, "a1", "m2", 2)
	sendOK(r, "b1", "m3", 3)
	r.Acked("m3", "c", 5, t0.Add(time.Hour)) // a retry with another seq: duplicated stored
	r.Invoke("m4", "b1", ab, t0.Add(4*time.Second))
	r.Ended("m4", Failed)
	r.Invoke("m5", "b1", ab, t0.Add(5*time.Second))
	r.Ended("m5", Unknown)
	show(r, "a2", "m1", 1, "alice")
	show(r, "a2", "m2", 2, "alice")
	show(r, "b1", "m2", 2, "alice") // m1 lost on b1, a gap below 2
	r.Shown("a1", Message{Conv: "c", Seq: 3, ClientMsgID: "m3", Sender: "bob", Text: "m3"}, Sync, t0.Add(10*time.Second))
	r.Receipt("a1", "c", "bob", false, 3)
	r.Receipt("a1", "c", "bob", true, 2)
	r.Receipt("a1", "c", "bob", false, 1)                                                      // pushed back
	r.Cursors(Cursor{User: "alice", Conv: "c", Last: 3, Delivered: 2, Read: 3, HasPeer: true}) // read > delivered
	r.Recovered("kill -9 gateway", 1500*time.Millisecond, true)
	r.Recovered("restart PostgreSQL", 0, false)
	if err := r.Record(nil); err != nil {
		t.Fatal(err)
	}
	return r, &buf
}

func TestHistoryReplaysToTheSameReport(t *testing.T) {
	r, buf := recordAll(t)
	want := r.Check()
	if want.OK() || want.Lost == 0 || want.DupStored == 0 || want.ReceiptViolations == 0 || want.Failed != 1 {
		t.Fatalf("the recorded run should violate lost, duplicated stored and receipts: %+v", want)
	}
	back, err := Replay(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Check(); !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed report differs:\n got %+v\nwant %+v\nhistory:\n%s", got, want, buf)
	}
}

func TestRecordStopsAtNil(t *testing.T) {
	var buf bytes.Buffer
	r := world()
	_ = r.Record(&buf)
	sendOK(r, "a1", "m1", 1)
	_ = r.Record(nil)
	n := buf.Len()
	sendOK(r, "a1", "m2", 2)
	if buf.Len() != n || n == 0 {
		t.Fatalf("history grew after Record(nil) or is empty: %d → %d bytes", n, buf.Len())
	}
	if got := strings.Count(buf.String(), "\n"); got != 2 {
		t.Fatalf("want 2 lines (invoke, ack), got %d:\n%s", got, buf.String())
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errTest }

var errTest = &testError{}

type testError struct{}

func (*testError) Error() string { return "disk full" }

func TestRecordReportsWriteErrors(t *testing.T) {
	r := world()
	_ = r.Record(failingWriter{})
	sendOK(r, "a1", "m1", 1)
	if err := r.Record(nil); err != errTest {
		t.Fatalf("Record(nil) = %v, want the write error", err)
	}
}

func TestReplayRejectsBadHistories(t *testing.T) {
	dev := `{"ev":"device","device":"a1","user":"alice"}` + "\n"
	inv := dev + `{"ev":"invoke","id":"m1","device":"a1","members":["alice","bob"],"at":"2026-01-01T00:00:00Z"}` + "\n"
	for _, tc := range []struct{ name, in, want string }{
		{"not JSON", "{", "history line 1: unexpected end of JSON input"},
		{"no event", `{"device":"a1"}`, `ev is missing`},
		{"unknown event", `{"ev":"sent"}`, `unknown event "sent"`},
		{"device without user", `{"ev":"device","device":"a1"}`, "user is missing"},
		{"invoke from an undeclared device", `{"ev":"invoke","id":"m1","device":"x","members":["a"],"at":"2026-01-01T00:00:00Z"}`, `device "x" was not declared`},
		{"invoke without members", dev + `{"ev":"invoke","id":"m1","device":"a1","at":"2026-01-01T00:00:00Z"}`, "history line 2 (\"invoke\" event): members is missing"},
		{"invoke without time", dev + `{"ev":"invoke","id":"m1","device":"a1","members":["a"]}`, "at is missing"},
		{"bad time", dev + `{"ev":"invoke","id":"m1","device":"a1","members":["a"],"at":"yesterday"}`, "history line 2: parsing time"},
		{"ack of an unknown send", dev + `{"ev":"ack","id":"m9","conv":"c","seq":1,"at":"2026-01-01T00:00:00Z"}`, `send "m9" was not declared`},
		{"ack without seq", inv + `{"ev":"ack","id":"m1","conv":"c","at":"2026-01-01T00:00:00Z"}`, "seq is missing"},
		{"ack with seq, without conv", inv + `{"ev":"ack","id":"m1","seq":3,"at":"2026-01-01T00:00:00Z"}`, "conv is missing"},
		{"bad outcome", inv + `{"ev":"end","id":"m1","outcome":"ok"}`, `outcome "ok": want failed or unknown`},
		{"bad phase", dev + `{"ev":"shown","device":"a1","conv":"c","seq":1,"phase":"later","at":"2026-01-01T00:00:00Z"}`, `phase "later"`},
		{"shown on an undeclared device", `{"ev":"shown","device":"z","conv":"c","seq":1,"at":"2026-01-01T00:00:00Z"}`, `device "z" was not declared`},
		{"bad receipt kind", dev + `{"ev":"receipt","device":"a1","conv":"c","user":"bob","kind":"seen","seq":1}`, `kind "seen"`},
		{"cursor without conv", `{"ev":"cursor","user":"alice"}`, "conv is missing"},
		{"bad duration", `{"ev":"recovered","fault":"f","took":"soon"}`, "took: time: invalid duration"},
		{"line too long", `{"ev":"device","device":"` + strings.Repeat("x", MaxHistoryLine) + `"}`, "history line 1: longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Replay(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Replay error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestReplaySkipsBlankLines(t *testing.T) {
	r, err := Replay(strings.NewReader("\n" + `{"ev":"device","device":"a1","user":"alice"}` + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rep := r.Check(); !rep.OK() || rep.Attempted != 0 {
		t.Fatalf("empty run: %+v", rep)
	}
}

func TestUnsequencedAckReplays(t *testing.T) {
	var buf bytes.Buffer
	r := New()
	_ = r.Record(&buf)
	r.Device("a1", "alice", false)
	r.Device("a2", "alice", false)
	r.Device("b1", "bob", false)
	r.Invoke("q1", "b1", ab, t0)
	r.AckedUnsequenced("q1", t0.Add(time.Millisecond))
	r.Invoke("q2", "b1", ab, t0)
	r.AckedUnsequenced("q2", t0.Add(time.Millisecond))
	show(r, "a1", "q1", 1, "bob")
	show(r, "a2", "q1", 1, "bob")
	_ = r.Record(nil)
	want := r.Check()
	if want.Lost != 1 || want.Acknowledged != 2 {
		t.Fatalf("want q2 lost of 2 acknowledged: %+v", want)
	}
	if !strings.Contains(buf.String(), `{"ev":"ack","id":"q1","at":`) {
		t.Fatalf("an unsequenced ack is written without conv and seq:\n%s", buf.String())
	}
	back, err := Replay(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Check(); !reflect.DeepEqual(got, want) {
		t.Fatalf("replayed report differs:\n got %+v\nwant %+v", got, want)
	}
}
