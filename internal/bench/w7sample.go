package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// countFDs counts the open file descriptors of pid (entries of
// /proc/PID/fd; reading it needs the same rights as ptrace, unlike status).
func countFDs(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(ents), nil
}

// parseMetrics reads the samples of a Prometheus text page into a map by
// series ("name" or "name{labels}"). Comments and malformed lines are
// skipped: the page is the server's own, and one odd line should not lose
// the rest of a soak sample.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// Label values may hold spaces: the series ends at the last '}'.
		series, rest := line, ""
		if i := strings.LastIndexByte(line, '}'); i > 0 && strings.IndexByte(line, '{') < i {
			series, rest = line[:i+1], line[i+1:]
		} else if f := strings.Fields(line); len(f) >= 2 {
			series, rest = f[0], strings.Join(f[1:], " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		out[series] = v
	}
	return out, sc.Err()
}

// scrapeMetrics fetches and parses the server's /metrics at addr
// (host:port of its --metrics listener, or a URL).
func scrapeMetrics(ctx context.Context, hc *http.Client, addr string) (map[string]float64, error) {
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	url = strings.TrimRight(url, "/")
	if !strings.HasSuffix(url, "/metrics") {
		url += "/metrics"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return parseMetrics(io.LimitReader(resp.Body, 4<<20))
}

// intervalLatency summarizes what cur holds beyond prev, an earlier
// snapshot of the same growing histogram.
func intervalLatency(cur, prev *Histogram) IntervalLatency {
	d := Histogram{counts: append([]uint64(nil), cur.counts...), n: cur.n - prev.n, max: cur.max}
	for i, c := range prev.counts {
		if i < len(d.counts) {
			d.counts[i] -= c
		}
	}
	// d.max is the maximum to date: Quantile caps by it, so it still never
	// understates.
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return IntervalLatency{Count: d.n, P50: ms(d.Quantile(0.50)), P99: ms(d.Quantile(0.99))}
}
