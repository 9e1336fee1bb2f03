package clustertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A failed run's output names each log with errors, its last error lines
// and the start of its panic, and leaves out clean logs; bounded in size.
func TestErrorLogTails(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lines ...string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var gw []string
	for i := range 30 {
		gw = append(gw, fmt.Sprintf("time=x level=INFO msg=ok n=%d", i), fmt.Sprintf("time=x level=ERROR msg=broken n=%d", i))
	}
	write("gw-0.log", gw...)
	stack := []string{"time=x level=INFO msg=started", "panic: runtime error: index out of range [3] with length 3", "", "goroutine 7 [running]:"}
	for i := range 40 {
		stack = append(stack, fmt.Sprintf("main.f%d()", i))
	}
	write("logic-1.log", stack...)
	write("nats-0.log", "[1] 2026/12/06 [INF] Server is ready", "[1] 2026/12/06 [ERR] 127.0.0.1:4222 - rid:5 - Error trying to connect to route")
	write("postgres.log", "LOG:  database system is ready", "FATAL:  terminating connection due to administrator command",
		`2026-12-06 21:12:01.315 UTC [24278] ERROR:  null value in column "seq" of relation "messages" violates not-null constraint`)
	write("logic-0.log", "time=x level=INFO msg=fine", "time=x level=WARN msg=slow")
	write("history.jsonl", `{"level":"ERROR"}`) // not a process log

	got := ErrorLogTails(dir, 20)
	for _, want := range []string{
		"==== gw-0.log: error lines 30, panics 0",
		"level=ERROR msg=broken n=29", "level=ERROR msg=broken n=10",
		"==== logic-1.log: error lines 1, panics 1", "panic: runtime error: index out of range", "main.f16()",
		"==== nats-0.log: error lines 1", "Error trying to connect to route",
		"==== postgres.log: error lines 1, panics 0 (and 1 the store causes on purpose", "FATAL:  terminating connection",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	for _, not := range []string{"n=9\n", "msg=ok", "main.f17()", "logic-0.log", "history.jsonl", "null value"} {
		if strings.Contains(got, not) {
			t.Errorf("has %q (an older error line, a non-error line, past the panic's 20 lines, or a clean log) in:\n%s", not, got)
		}
	}

	// Bounded: long lines are cut, and so is the whole.
	long := strings.Repeat("x", 5000)
	for i := range 30 {
		var ls []string
		for range 25 {
			ls = append(ls, "level=ERROR msg="+long)
		}
		write(fmt.Sprintf("big-%02d.log", i), ls...)
	}
	got = ErrorLogTails(dir, 20)
	if len(got) > tailMaxBytes+200 {
		t.Errorf("%d bytes of tails, want at most about %d", len(got), tailMaxBytes)
	}
	if !strings.Contains(got, "more logs with errors left out") || strings.Contains(got, strings.Repeat("x", tailLineBytes+1)) {
		t.Errorf("not cut:\n%.2000s", got)
	}
	if ErrorLogTails(t.TempDir(), 20) != "" {
		t.Error("tails of a directory without logs")
	}
}
