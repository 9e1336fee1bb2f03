package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime in /proc/N/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// procSample is one reading of a process's memory and CPU time.
type procSample struct {
	At     time.Time
	RSS    int64         // bytes (VmRSS)
	CPU    time.Duration // user + system
	Valid  bool
	errMsg string
}

// readProc reads /proc/pid/status VmRSS and /proc/pid/stat utime+stime.
// pid 0 gives an invalid sample (not measured).
func readProc(pid int) procSample {
	s := procSample{At: time.Now()}
	if pid <= 0 {
		return s
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		s.errMsg = err.Error()
		return s
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v) // "12345 kB"
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				s.RSS = kb * 1024
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		s.errMsg = err.Error()
		return s
	}
	cpu, err := parseStatCPU(stat)
	if err != nil {
		s.errMsg = err.Error()
		return s
	}
	s.CPU = cpu
	s.Valid = true
	return s
}

// parseStatCPU returns utime+stime from the contents of /proc/N/stat. The
// command name (field 2) may contain spaces, so fields count from the last ')'.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("bench: malformed /proc stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// After ')': state(3) ppid(4) ... utime is field 14, stime 15 → index 11, 12.
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: short /proc stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: bad utime/stime in /proc stat")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// cpuDelta is the CPU a process used between two samples, as a fraction of
// one core (1.0 = one core busy) and in absolute time.
type cpuDelta struct {
	CPU   time.Duration
	Cores float64
	Valid bool
}

func deltaCPU(a, b procSample) cpuDelta {
	if !a.Valid || !b.Valid {
		return cpuDelta{}
	}
	wall := b.At.Sub(a.At)
	d := cpuDelta{CPU: b.CPU - a.CPU, Valid: true}
	if wall > 0 {
		d.Cores = d.CPU.Seconds() / wall.Seconds()
	}
	return d
}

// Machine describes where a run happened, for docs/benchmarks.md.
type Machine struct {
	NProc   int    `json:"nproc"`
	RAM     string `json:"ram"`
	Kernel  string `json:"kernel"`
	Go      string `json:"go"`
	Commit  string `json:"commit"`
	Host    string `json:"host"`
	Started string `json:"started"`
	// LoadAvg is /proc/loadavg when the run started: other work on the
	// machine competes with the server and the generator.
	LoadAvg string `json:"loadavg_at_start"`
}

func describeMachine() Machine {
	m := Machine{NProc: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339)}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					kb, _ := strconv.ParseInt(f[0], 10, 64)
					m.RAM = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	} else {
		m.Commit = "unknown"
	}
	return m
}

// slabBytes reads the kernel's slab memory from /proc/meminfo (whole
// machine; sockets live there); -1 if unreadable.
func slabBytes() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Slab:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb * 1024
				}
			}
		}
	}
	return -1
}

// selfPID is the generator's own pid, for its CPU beside the server's.
var selfPID = os.Getpid()
