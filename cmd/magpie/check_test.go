package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magpie-im/magpie/internal/checker"
)

// writeHistory records a small run into a file: alice sends m1 to bob,
// whose one device shows it (or, with lose, does not).
func writeHistory(t *testing.T, lose bool) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "history.jsonl")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	r := checker.New()
	_ = r.Record(w)
	t0 := time.Unix(1_700_000_000, 0)
	r.Device("a1", "alice", false)
	r.Device("b1", "bob", false)
	r.Invoke("m1", "a1", []string{"alice", "bob"}, t0)
	r.Acked("m1", "c", 1, t0.Add(3*time.Millisecond))
	if !lose {
		r.Shown("b1", checker.Message{Conv: "c", Seq: 1, ClientMsgID: "m1", Sender: "alice", Text: "hi"}, checker.Live, t0.Add(9*time.Millisecond))
	}
	if err := r.Record(nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return name
}

func TestCheckCommand(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"check", writeHistory(t, false)}, nil, &out, &errOut); err != nil {
		t.Fatalf("check of a clean run: %v\n%s", err, out.String())
	}
	for _, want := range []string{"| attempted / acknowledged | 1 / 1 |", "| lost | 0 ✓ |", "latency: ACK | p50 3ms"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckCommandJSONAndViolations(t *testing.T) {
	var out, errOut strings.Builder
	err := run(context.Background(), []string{"check", "--json", writeHistory(t, true)}, nil, &out, &errOut)
	if !errors.Is(err, errViolations) || !strings.Contains(err.Error(), "lost=1") {
		t.Fatalf("check of a lossy run: err = %v, want the violations (lost=1)", err)
	}
	var got struct {
		OK         bool     `json:"ok"`
		Violations []string `json:"violations"`
		Report     struct {
			Acknowledged int `json:"acknowledged"`
			Lost         int `json:"lost"`
			Ack          struct {
				P50 int64 `json:"p50_ns"`
			} `json:"ack"`
		} `json:"report"`
	}
	if err := json.Unmarshal([]byte(out.String()), &got); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out.String())
	}
	if got.OK || len(got.Violations) != 1 || got.Report.Lost != 1 || got.Report.Acknowledged != 1 || got.Report.Ack.P50 != int64(3*time.Millisecond) {
		t.Fatalf("--json report: %+v", got)
	}
}

func TestCheckCommandStdinAndBadInput(t *testing.T) {
	var out, errOut strings.Builder
	in := strings.NewReader(`{"ev":"device","device":"a1","user":"alice"}` + "\n")
	if err := run(context.Background(), []string{"check", "-"}, in, &out, &errOut); err != nil {
		t.Fatalf("check - (stdin): %v", err)
	}
	for _, tc := range []struct {
		args []string
		in   string
		want string
	}{
		{[]string{"check"}, "", "check takes one history file, got 0 arguments"},
		{[]string{"check", "a", "b"}, "", "got 2 arguments"},
		{[]string{"check", filepath.Join(t.TempDir(), "none.jsonl")}, "", "no such file"},
		{[]string{"check", "-"}, `{"ev":"nope"}`, `history line 1 ("nope" event): unknown event`},
		{[]string{"check", "--colour", "-"}, "", "flag provided but not defined: -colour"},
	} {
		err := run(context.Background(), tc.args, strings.NewReader(tc.in), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}
