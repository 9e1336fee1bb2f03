// Package bench is Magpie's load generator, `magpie bench`: workloads from
// docs/benchmarks.md (W1 idle connections, W2 durable 1:1 messages) run
// against a live server and report a human table and, with --json, a JSON
// document with the same figures.
//
// Adding a workload: write a function with the signature of workload.run
// and append it to workloads. Every workload gets the common flags
// (commonFlags) and returns a value that marshals to JSON and a table.
//
// Run is safe to call from several goroutines with different arguments,
// though two runs share the machine and disturb each other's figures.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/tlsconf"
)

// workload is one entry of the registry.
type workload struct {
	name    string
	summary string
	// flags registers the workload's own flags; run runs it with the
	// parsed flags. The result is printed and, with --json, written out.
	flags func(fs *flag.FlagSet, smoke *bool) func(ctx context.Context, c *common) (report, error)
}

// report is a workload's result.
type report interface {
	// table writes the human-readable result.
	table(w io.Writer)
	// problems lists what a --smoke run must fail on (losses, failures).
	problems() []string
}

var workloads = []workload{
	{"w1", "idle connections: connect+auth rate, server RSS and CPU per connection", w1Flags},
	{"w2", "1:1 durable messages: open-loop rate steps and closed-loop maximum", w2Flags},
	{"w3", "group fan-out: open-loop sends to groups of online members, delivery latency and loss", w3Flags},
	{"w4", "transient push: signed POST /v1/push fanned out to online connections", w4Flags},
	{"w8", "MQTT: idle MQTT connections (RSS per connection), device → user pass-through at QoS 1 and 0", w8Flags},
	{"w7", "soak: W1 idle connections + W2 at 30 % of maximum; RSS, fd and goroutine drift, GC pauses", w7Flags},
}

// common holds the flags every workload takes.
type common struct {
	Server      string
	PID         int
	JSONFile    string
	Metrics     string // host:port of the server's --metrics listener
	Duration    time.Duration
	Warmup      time.Duration
	Transport   string
	TLS         *tls.Config // --ca: for an https server and its TLS gateways; nil: system roots
	Sources     []net.IP
	UsersPrefix string
	Smoke       bool

	set            map[string]bool // flags given on the command line
	stdout, stderr io.Writer
	machine        Machine
}

// httpClient is an HTTP client for the server, with --ca's trust.
// maxIdle is idle connections kept per host (0: net/http's default).
func (c *common) httpClient(timeout time.Duration, maxIdle int) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: maxIdle}
	if c.TLS != nil {
		tr.TLSClientConfig = c.TLS.Clone()
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

func (c *common) logf(format string, args ...any) {
	fmt.Fprintf(c.stderr, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

const usage = `Usage: magpie bench <workload> [flags]
       magpie bench --smoke [common flags]   (tiny W1, W2, W3, W7; fails on any loss)

Workloads:
%s
Run 'magpie bench <workload> --help' for its flags. docs/benchmarks.md says what
each workload measures and the targets.
`

// Run runs `magpie bench` with args (after "bench").
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var list strings.Builder
	for _, w := range workloads {
		fmt.Fprintf(&list, "  %-4s %s\n", w.name, w.summary)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintf(stderr, usage, list.String())
		if len(args) == 0 {
			return errors.New("bench: no workload given")
		}
		return flag.ErrHelp
	}
	if strings.HasPrefix(args[0], "-") {
		// Only the smoke profile runs without a workload name.
		return runSmokeAll(ctx, args, stdout, stderr)
	}
	for _, w := range workloads {
		if w.name == args[0] {
			_, err := runWorkload(ctx, w, args[1:], stdout, stderr, nil)
			return err
		}
	}
	fmt.Fprintf(stderr, usage, list.String())
	return fmt.Errorf("bench: unknown workload %q", args[0])
}

// runWorkload parses w's flags, runs it, prints and saves the result.
// forceSmoke, if set, turns --smoke on.
func runWorkload(ctx context.Context, w workload, args []string, stdout, stderr io.Writer, forceSmoke *bool) (report, error) {
	fs := flag.NewFlagSet("magpie bench "+w.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &common{stdout: stdout, stderr: stderr}
	var sources, caFile string
	fs.StringVar(&c.Server, "server", "http://127.0.0.1:8080", "server HTTP base URL")
	fs.IntVar(&c.PID, "pid", 0, "the server's pid, to read its RSS and CPU from /proc (0: not measured)")
	fs.StringVar(&c.JSONFile, "json", "", "also write the result as JSON to this file")
	fs.StringVar(&c.Metrics, "metrics", "", "host:port of the server's --metrics listener: W7 reads its goroutines, heap and GC pauses, W1 its heap and stacks after a GC (others ignore it)")
	fs.StringVar(&c.Transport, "transport", "tcp", "long-connection transport: tcp or ws")
	fs.StringVar(&caFile, "ca", "", "PEM file of a CA to trust for an https:// server and its wss:// and tls:// gateways, besides the system roots")
	fs.StringVar(&sources, "sources", "", "W1 and W7's idle connections: local source IPs to spread connections over, comma-separated (e.g. 127.0.0.2,127.0.0.3); W2 ignores it (the SDK dials on its own)")
	fs.StringVar(&c.UsersPrefix, "users-prefix", "", "prefix of the bench users' names (default: random per run)")
	fs.BoolVar(&c.Smoke, "smoke", false, "tiny run (< 1 minute) that fails on any loss, duplicate, reorder or failure")
	run := w.flags(fs, &c.Smoke)
	// Defaults of --duration/--warmup are the workload's (registered in
	// w.flags); define them here only if it did not.
	if fs.Lookup("duration") == nil {
		fs.DurationVar(&c.Duration, "duration", 30*time.Second, "measurement window")
	}
	if fs.Lookup("warmup") == nil {
		fs.DurationVar(&c.Warmup, "warmup", 5*time.Second, "warm-up before measuring")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("bench %s: unexpected arguments %q", w.name, fs.Args())
	}
	if forceSmoke != nil && *forceSmoke {
		c.Smoke = true
	}
	c.Duration, _ = durationFlag(fs, "duration")
	c.Warmup, _ = durationFlag(fs, "warmup")
	if c.Transport != "tcp" && c.Transport != "ws" {
		return nil, fmt.Errorf("bench: --transport must be tcp or ws, not %q", c.Transport)
	}
	if caFile != "" {
		var err error
		if c.TLS, err = tlsconf.ClientConfig(caFile); err != nil {
			return nil, fmt.Errorf("bench: --ca: %w", err)
		}
	}
	for _, s := range strings.Split(sources, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("bench: --sources: %q is not an IP address", s)
		}
		c.Sources = append(c.Sources, ip)
	}
	if c.UsersPrefix == "" {
		var b [3]byte
		rand.Read(b[:])
		c.UsersPrefix = "b" + hex.EncodeToString(b[:])
	}
	c.machine = describeMachine()

	rep, err := run(ctx, c)
	if rep == nil {
		return nil, err
	}
	rep.table(stdout)
	if c.JSONFile != "" {
		doc := struct {
			Workload string   `json:"workload"`
			Args     []string `json:"args"`
			Machine  Machine  `json:"machine"`
			Result   report   `json:"result"`
			Error    string   `json:"error,omitempty"`
		}{w.name, args, c.machine, rep, errString(err)}
		b, jerr := json.MarshalIndent(doc, "", "  ")
		if jerr == nil {
			jerr = os.WriteFile(c.JSONFile, append(b, '\n'), 0o644)
		}
		if jerr != nil && err == nil {
			err = fmt.Errorf("bench: writing --json: %w", jerr)
		}
	}
	if err == nil && c.Smoke {
		if p := rep.problems(); len(p) > 0 {
			err = fmt.Errorf("bench %s smoke failed: %s", w.name, strings.Join(p, "; "))
		}
	}
	return rep, err
}

func durationFlag(fs *flag.FlagSet, name string) (time.Duration, bool) {
	f := fs.Lookup(name)
	if f == nil {
		return 0, false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return 0, false
	}
	d, ok := g.Get().(time.Duration)
	return d, ok
}

// runSmokeAll runs the smoke profiles of W1, W2, W3 and W7 one after the other with
// the given common flags; the JSON file (if any) gets a suffix per workload.
func runSmokeAll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	on := true
	var errs []error
	for _, name := range []string{"w1", "w2", "w3", "w7"} {
		wargs := withJSONSuffix(args, name)
		for _, w := range workloads {
			if w.name == name {
				_, err := runWorkload(ctx, w, wargs, stdout, stderr, &on)
				if errors.Is(err, flag.ErrHelp) {
					return err
				}
				if err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// withJSONSuffix rewrites "--json F" so each smoke workload writes F.name.
func withJSONSuffix(args []string, name string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "--json" || a == "-json") && i+1 < len(args):
			out = append(out, a, args[i+1]+"."+name)
			i++
		case strings.HasPrefix(a, "--json=") || strings.HasPrefix(a, "-json="):
			out = append(out, a+"."+name)
		default:
			out = append(out, a)
		}
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
