package bench

import (
	"fmt"
	"io"
	"time"
)

// The soak's targets (the benchmark plan's W7 row) and the slack allowed
// for what a healthy server does between two samples: in-flight requests
// and timers come and go, a leak grows with time and passes any constant.
const (
	w7MaxRSSDrift    = 0.05
	w7GoroutineSlack = 50 // goroutines, or w7GoroutineFrac of the baseline if larger
	w7GoroutineFrac  = 0.02
	w7FDSlack        = 10 // fds, or w7FDFrac of the baseline if larger
	w7FDFrac         = 0.001
	w7MaxGCPauseP99  = time.Millisecond

	verdictMet         = "met"
	verdictMissed      = "missed"
	verdictNotMeasured = "not measured"
)

// Verdict is one check of a run against its target.
type Verdict struct {
	Check    string `json:"check"`
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Verdict  string `json:"verdict"` // met, missed, not measured
}

func judge(ok bool) string {
	if ok {
		return verdictMet
	}
	return verdictMissed
}

// w7Verdicts compares the last sample with the baseline (samples[0]).
func w7Verdicts(samples []W7Sample, w2 StepResult, connFailed int, dropped int64) []Verdict {
	var base, last W7Sample
	if len(samples) >= 2 {
		base, last = samples[0], samples[len(samples)-1]
	}
	return []Verdict{
		rssVerdict(base, last),
		goroutineVerdict(base, last),
		fdVerdict(base, last),
		gcVerdict(last),
		{"W2 lost / duplicated / reordered", "0 / 0 / 0", fmt.Sprintf("%d / %d / %d", w2.Lost, w2.Duplicated, w2.Reordered),
			judge(w2.Lost+w2.Duplicated+w2.Reordered == 0 && w2.Acked > 0)},
		{"idle connections failed / dropped", "0 / 0", fmt.Sprintf("%d / %d", connFailed, dropped), judge(connFailed == 0 && dropped == 0)},
	}
}

func rssVerdict(base, last W7Sample) Verdict {
	v := Verdict{Check: "server RSS drift (last − baseline) / baseline", Target: fmt.Sprintf("≤ %.0f %%", w7MaxRSSDrift*100), Verdict: verdictNotMeasured}
	if !base.ProcMeasured || !last.ProcMeasured || base.RSSKiB <= 0 {
		v.Measured = "no --pid, or fewer than 2 samples"
		return v
	}
	drift := float64(last.RSSKiB-base.RSSKiB) / float64(base.RSSKiB)
	v.Measured = fmt.Sprintf("%+.2f %% (%.1f → %.1f MiB)", drift*100, float64(base.RSSKiB)/1024, float64(last.RSSKiB)/1024)
	v.Verdict = judge(drift <= w7MaxRSSDrift)
	return v
}

// growthSlack is the growth allowed over base: slack, or frac of base if
// that is larger.
func growthSlack(base, slack int, frac float64) int {
	return max(slack, int(frac*float64(base)))
}

func goroutineVerdict(base, last W7Sample) Verdict {
	v := Verdict{Check: "server goroutine growth (last − baseline)",
		Target:  fmt.Sprintf("≤ max(%d, %.0f %% of baseline)", w7GoroutineSlack, w7GoroutineFrac*100),
		Verdict: verdictNotMeasured}
	if !base.MetricsMeasured || !last.MetricsMeasured {
		v.Measured = "no --metrics, or fewer than 2 samples"
		return v
	}
	allowed := growthSlack(base.Goroutines, w7GoroutineSlack, w7GoroutineFrac)
	grew := last.Goroutines - base.Goroutines
	v.Measured = fmt.Sprintf("%+d (%d → %d; allowed %d)", grew, base.Goroutines, last.Goroutines, allowed)
	v.Verdict = judge(grew <= allowed)
	return v
}

func fdVerdict(base, last W7Sample) Verdict {
	v := Verdict{Check: "server open fd growth (last − baseline)",
		Target:  fmt.Sprintf("≤ max(%d, %.1f %% of baseline)", w7FDSlack, w7FDFrac*100),
		Verdict: verdictNotMeasured}
	if !base.FDsMeasured || !last.FDsMeasured {
		v.Measured = "no --pid (or /proc/PID/fd unreadable), or fewer than 2 samples"
		return v
	}
	allowed := growthSlack(base.FDs, w7FDSlack, w7FDFrac)
	grew := last.FDs - base.FDs
	v.Measured = fmt.Sprintf("%+d (%d → %d; allowed %d)", grew, base.FDs, last.FDs, allowed)
	v.Verdict = judge(grew <= allowed)
	return v
}

func gcVerdict(last W7Sample) Verdict {
	v := Verdict{Check: "server GC pause p99 (whole process life)", Target: fmt.Sprintf("≤ %.0f ms", float64(w7MaxGCPauseP99)/float64(time.Millisecond)), Verdict: verdictNotMeasured}
	if !last.MetricsMeasured {
		v.Measured = "no --metrics, or fewer than 2 samples"
		return v
	}
	v.Measured = fmt.Sprintf("%.3f ms (max %.3f ms)", last.GCPauseP99Ms, last.GCPauseMaxMs)
	v.Verdict = judge(last.GCPauseP99Ms <= float64(w7MaxGCPauseP99)/float64(time.Millisecond))
	return v
}

// problems fails a --smoke run on losses and failures only: a 20-second
// run says nothing about drift.
func (r *W7Result) problems() []string {
	var p []string
	s := r.W2
	if s.Lost+s.Duplicated+s.Reordered+s.Failed+s.Skipped > 0 {
		p = append(p, fmt.Sprintf("W2: lost %d, duplicated %d, reordered %d, failed %d, skipped %d", s.Lost, s.Duplicated, s.Reordered, s.Failed, s.Skipped))
	}
	if s.Acked == 0 {
		p = append(p, "W2: nothing was ACKed")
	}
	if r.ConnFailed > 0 || r.Dropped > 0 {
		p = append(p, fmt.Sprintf("idle connections: %d failed, %d dropped", r.ConnFailed, r.Dropped))
	}
	if len(r.Samples) < 2 {
		p = append(p, fmt.Sprintf("%d samples taken, want at least 2", len(r.Samples)))
	}
	return p
}

func (r *W7Result) table(w io.Writer) {
	fmt.Fprintf(w, "W7 soak: %d idle %s connections (%d users, ping every %.0f s) + W2 %d pairs at %.0f msgs/s; warm-up %v, window %v, sample every %v\n",
		r.Connected, r.Transport, r.Users, r.PingSecs, r.Pairs, r.Rate, secs(r.WarmupSecs), secs(r.DurationSecs), secs(r.SampleSecs))
	t := newTable(w)
	t.row("t s", "srv RSS MiB", "fds", "goroutines", "heap MiB", "GC p99/max ms", "srv cores",
		"sent", "acked", "failed", "deliv", "ack p50/p99 ms", "deliver p50/p99 ms", "dropped")
	for i, s := range r.Samples {
		at := fmt.Sprintf("%.0f", s.At)
		if i == 0 {
			at = "0 base"
		}
		rss, cores, fds, gor, heap, gc := "n/m", "n/m", "n/m", "n/m", "n/m", "n/m"
		if s.ProcMeasured {
			rss, cores = fmt.Sprintf("%.1f", float64(s.RSSKiB)/1024), fmt.Sprintf("%.2f", s.ServerCores)
			if i == 0 {
				cores = "-" // no interval before the baseline
			}
		}
		if s.FDsMeasured {
			fds = fmt.Sprint(s.FDs)
		}
		if s.MetricsMeasured {
			gor, heap, gc = fmt.Sprint(s.Goroutines), fmt.Sprintf("%.1f", s.HeapInuseMiB), fmt.Sprintf("%.3f/%.3f", s.GCPauseP99Ms, s.GCPauseMaxMs)
		}
		lat := func(x IntervalLatency) string {
			if x.Count == 0 {
				return "-"
			}
			return f2(x.P50) + "/" + f2(x.P99)
		}
		t.row(at, rss, fds, gor, heap, gc, cores, u(s.Sent), u(s.Acked), u(s.Failed), u(s.Delivered), lat(s.Ack), lat(s.Deliver), fmt.Sprint(s.Dropped))
	}
	t.flush()
	fmt.Fprintln(w, "base: the end of the warm-up (its counts are the warm-up's); latencies are of ACKs and deliveries in each interval; GC pauses over the server's life; n/m: not measured (--pid, --metrics).")

	s := r.W2
	t = newTable(w)
	t.row("W2 window", fmt.Sprintf("acked %.0f/s, delivered %.0f/s; sent %d, acked %d, failed %d, delivered %d, skipped %d",
		s.AckedRate, s.DeliveredRate, s.Sent, s.Acked, s.Failed, s.Delivered, s.Skipped))
	t.row("W2 ack / deliver latency p50/p90/p99/p99.9/max ms", pct(s.Ack)+"  /  "+pct(s.Deliver))
	t.row("generator CPU (window)", fmt.Sprintf("%.2f cores", s.GeneratorCores))
	t.row("idle connections (target / connected / failed / dropped)", fmt.Sprintf("%d / %d / %d / %d; %d pings, %d pongs", r.Conns, r.Connected, r.ConnFailed, r.Dropped, r.Pings, r.Pongs))
	t.flush()
	t = newTable(w)
	t.row("check", "target", "measured", "verdict")
	for _, v := range r.Verdicts {
		t.row(v.Check, v.Target, v.Measured, v.Verdict)
	}
	t.flush()
	for _, e := range append(r.Errors, s.Errors...) {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
