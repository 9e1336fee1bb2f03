package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Usage is one process's resources at one moment (scenario 12's soak).
type Usage struct {
	Goroutines int   // magpie processes only (from /debug/pprof); -1: not known
	FDs        int   // open file descriptors
	RSS        int64 // resident memory, bytes
}

// SoakFigure is one process at the start and the end of the soak: each
// the least of a third of the samples.
type SoakFigure struct {
	Proc       string
	Start, End Usage
	Samples    int
}

// soakEvery is how often the soak samples every process.
const soakEvery = 2 * time.Second

// soakFigure reduces name's samples (at least 3) to a figure.
func soakFigure(name string, samples []map[string]Usage) (SoakFigure, bool) {
	var us []Usage
	for _, s := range samples {
		if u, ok := s[name]; ok {
			us = append(us, u)
		}
	}
	if len(us) < 3 || len(us) < len(samples) { // restarted meanwhile: not comparable
		return SoakFigure{}, false
	}
	third := len(us) / 3
	least := func(us []Usage) Usage {
		m := us[0]
		for _, u := range us[1:] {
			m.Goroutines, m.FDs, m.RSS = min(m.Goroutines, u.Goroutines), min(m.FDs, u.FDs), min(m.RSS, u.RSS)
		}
		return m
	}
	return SoakFigure{Proc: name, Start: least(us[:third]), End: least(us[len(us)-third:]), Samples: len(us)}, true
}

// Grew says what grew past the soak's bounds, or "". The bounds leave
// room for noise (a GC cycle, a reconnect in flight), not for a leak that
// keeps pace with the load: goroutines +20 % + 50, descriptors +20 % + 20,
// memory +50 % + 32 MiB.
func (f SoakFigure) Grew() string {
	var out []string
	if f.Start.Goroutines >= 0 && f.End.Goroutines > f.Start.Goroutines*12/10+50 {
		out = append(out, fmt.Sprintf("goroutines %d → %d", f.Start.Goroutines, f.End.Goroutines))
	}
	if f.End.FDs > f.Start.FDs*12/10+20 {
		out = append(out, fmt.Sprintf("file descriptors %d → %d", f.Start.FDs, f.End.FDs))
	}
	if f.End.RSS > f.Start.RSS*3/2+32<<20 {
		out = append(out, fmt.Sprintf("memory %d → %d MiB", f.Start.RSS>>20, f.End.RSS>>20))
	}
	return strings.Join(out, ", ")
}

func (f SoakFigure) String() string {
	g := func(u Usage) string {
		if u.Goroutines < 0 {
			return "-"
		}
		return strconv.Itoa(u.Goroutines)
	}
	return fmt.Sprintf("%s: goroutines %s → %s, fds %d → %d, RSS %d → %d MiB (least of the first and last third of %d samples)",
		f.Proc, g(f.Start), g(f.End), f.Start.FDs, f.End.FDs, f.Start.RSS>>20, f.End.RSS>>20, f.Samples)
}

// usage samples every running process of the topology (not PostgreSQL,
// whose backends come and go with connections).
func (t *Topology) usage(ctx context.Context) map[string]Usage {
	out := map[string]Usage{}
	for _, p := range t.procs() {
		if !p.Running() {
			continue
		}
		u := Usage{Goroutines: -1}
		pid := p.cmd.Process.Pid
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			u.FDs = len(fds)
		}
		u.RSS = rss(pid)
		if addr := t.metricsOf(p); addr != "" {
			u.Goroutines = goroutines(ctx, addr)
		}
		out[p.Name] = u
	}
	return out
}

func (t *Topology) metricsOf(p *Proc) string {
	for _, n := range append(append([]*Node{}, t.Gateways...), t.Logic...) {
		if n.Proc == p {
			return n.Metrics
		}
	}
	return ""
}

func rss(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// goroutines reads "goroutine profile: total N" from a node's pprof.
func goroutines(ctx context.Context, addr string) int {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/goroutine?debug=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total")))
	if err != nil {
		return -1
	}
	return n
}

// DumpGoroutines writes every goroutine's stack of a magpie process to
// Dir/NAME-goroutines.txt, for a soak that grew; the path, or "".
func (t *Topology) DumpGoroutines(ctx context.Context, name string) string {
	for _, p := range t.procs() {
		addr := t.metricsOf(p)
		if p.Name != name || addr == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/goroutine?debug=2", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		file := filepath.Join(t.cfg.Dir, name+"-goroutines.txt")
		f, err := os.Create(file)
		if err != nil {
			return ""
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			return ""
		}
		return file
	}
	return ""
}
