package clustertest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Log tails for a failure message: CI keeps the test's output, not the
// run's directory, so a failed run prints the error lines of its process
// logs (ErrorLogTails).

const (
	tailLineBytes = 300   // a longer log line is cut
	tailMaxBytes  = 24000 // all the tails together
)

// isPanic reports whether line starts a Go panic or a fatal runtime error.
func isPanic(line string) bool {
	return strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ")
}

// isErrorLine reports whether line is an error in one of the run's logs:
// magpie's (slog, text or JSON) ERROR level, nats-server's [ERR] and
// [FTL], PostgreSQL's ERROR, FATAL and PANIC, or a Go panic.
func isErrorLine(line string) bool {
	if isPanic(line) {
		return true
	}
	for _, m := range []string{"level=ERROR", `"level":"ERROR"`, "[ERR]", "[FTL]", "ERROR:  ", "FATAL:  ", "PANIC:  "} {
		if strings.Contains(line, m) {
			return true
		}
	}
	return false
}

// expectedErrors are PostgreSQL errors the store causes on purpose: the
// two-round-trip append (sqlstore/pgpipeline.go) fails its statement on
// NOT NULL or a unique index when what it read changed, and then runs the
// batch on the locking path. A loaded run logs thousands; they are counted
// apart so the tail shows the other errors.
var expectedErrors = []string{
	`ERROR:  null value in column "seq" of relation "messages" violates not-null constraint`,
	`ERROR:  duplicate key value violates unique constraint "messages_sender_id_client_msg_id_key"`,
	`ERROR:  duplicate key value violates unique constraint "messages_pkey"`,
}

func isExpectedError(line string) bool {
	for _, e := range expectedErrors {
		if strings.Contains(line, e) {
			return true
		}
	}
	return false
}

// logTail is what one log holds for the failure message.
type logTail struct {
	errors   int      // error lines in all, expected ones not
	expected int      // expectedErrors lines
	last     []string // the last n of them
	panics   int
	panic    []string // the last panic's first n lines
}

func readLogTail(file string, n int) (logTail, error) {
	var lt logTail
	f, err := os.Open(file)
	if err != nil {
		return lt, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	inPanic := false
	for sc.Scan() {
		line := sc.Text()
		if len(line) > tailLineBytes {
			line = line[:tailLineBytes] + " …"
		}
		if isPanic(line) {
			lt.panics++
			lt.panic, inPanic = nil, true
		}
		if inPanic {
			if len(lt.panic) < n {
				lt.panic = append(lt.panic, line)
			} else {
				inPanic = false
			}
		}
		if isExpectedError(line) {
			lt.expected++
		} else if isErrorLine(line) {
			lt.errors++
			lt.last = append(lt.last, line)
			if len(lt.last) > n {
				lt.last = lt.last[1:]
			}
		}
	}
	return lt, sc.Err()
}

// ErrorLogTails returns, for every process log (*.log) in dir with an
// error line or a panic (isErrorLine), its count of them, its last n error
// lines and the first n lines of its last panic (the message and the top
// of the stack); each line cut at 300 bytes, 24,000 bytes in all at most.
// Empty if no log has an error.
func ErrorLogTails(dir string, n int) string {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(files)
	var b strings.Builder
	for _, file := range files {
		lt, err := readLogTail(file, n)
		if lt.errors == 0 && err == nil {
			continue
		}
		var s strings.Builder
		fmt.Fprintf(&s, "==== %s: error lines %d, panics %d", filepath.Base(file), lt.errors, lt.panics)
		if lt.expected > 0 {
			fmt.Fprintf(&s, " (and %d the store causes on purpose, not shown: an append's optimistic check)", lt.expected)
		}
		if err != nil {
			fmt.Fprintf(&s, " (read only in part: %v)", err)
		}
		s.WriteString("\n")
		if len(lt.panic) > 0 {
			fmt.Fprintf(&s, "the last panic:\n%s\n", strings.Join(lt.panic, "\n"))
		}
		if len(lt.last) > 0 {
			fmt.Fprintf(&s, "the last %d error lines:\n%s\n", len(lt.last), strings.Join(lt.last, "\n"))
		}
		if b.Len()+s.Len() > tailMaxBytes {
			fmt.Fprintf(&b, "==== … more logs with errors left out (%d bytes at most); all of them are in %s\n", tailMaxBytes, dir)
			break
		}
		b.WriteString(s.String())
	}
	return b.String()
}
