package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/magpie-im/magpie/internal/checker"
)

// errViolations is check's verdict when a must-be-zero figure is not zero
// (exit status 1, like any error).
var errViolations = errors.New("the checker found violations")

// runCheck is `magpie check [--json] FILE`: the checker of
// docs/testing.md over a recorded history (JSON Lines; "-" reads stdin).
func runCheck(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON (durations in nanoseconds) instead of a table")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: magpie check [--json] FILE

Runs the delivery checker over a recorded history (JSON Lines, one event a
line; docs/testing.md describes the format; FILE "-" reads stdin) and
prints its figures. Exit status 1 if a figure that must be zero is not.

`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("check takes one history file, got %d arguments", fs.NArg())
	}
	in := stdin
	if name := fs.Arg(0); name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	rec, err := checker.Replay(in)
	if err != nil {
		return err
	}
	rep := rec.Check()
	violations := rep.Violations()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if violations == nil {
			violations = []string{}
		}
		if err := enc.Encode(struct {
			OK         bool            `json:"ok"`
			Violations []string        `json:"violations"`
			Report     *checker.Report `json:"report"`
		}{len(violations) == 0, violations, rep}); err != nil {
			return err
		}
	} else {
		rep.Print(stdout)
	}
	if len(violations) > 0 {
		return fmt.Errorf("%w: %s", errViolations, strings.Join(violations, ", "))
	}
	return nil
}
