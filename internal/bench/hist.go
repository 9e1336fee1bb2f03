package bench

import (
	"math"
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: values below 2^subBits are
// counted exactly, larger ones in buckets 1/2^(subBits-1) wide relative to
// their value (under 1.6 % for subBits 7), like an HDR histogram with two
// significant digits.
const (
	subBits  = 7
	subCount = 1 << subBits       // exact buckets, then the first octave's base
	halfSub  = 1 << (subBits - 1) // buckets per octave above the exact range
)

// Histogram records non-negative int64 samples (nanoseconds here) in
// log-linear buckets. The zero value is ready to use. It is not safe for
// concurrent use; merge per-goroutine histograms instead.
type Histogram struct {
	counts []uint64
	n      uint64
	min    int64
	max    int64
	sum    float64
}

func bucketOf(v int64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits // >= 1
	sub := int(v >> e)                   // in [halfSub, 2*halfSub)
	return subCount + (e-1)*halfSub + (sub - halfSub)
}

// bucketHigh is the largest value counted in bucket i.
func bucketHigh(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	j := i - subCount
	e := j/halfSub + 1
	sub := int64(j%halfSub + halfSub)
	hi := (sub+1)<<e - 1
	if hi < 0 { // the top octave overflows int64
		return math.MaxInt64
	}
	return hi
}

// Record adds one sample; negative samples count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	b := bucketOf(v)
	if b >= len(h.counts) {
		n := max(b+1, 2*len(h.counts))
		c := make([]uint64, n)
		copy(c, h.counts)
		h.counts = c
	}
	h.counts[b]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// RecordDuration records d in nanoseconds.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		c := make([]uint64, len(o.counts))
		copy(c, h.counts)
		h.counts = c
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h, keeping its buckets allocated.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.n, h.min, h.max, h.sum = 0, 0, 0, 0
}

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample, exactly.
func (h *Histogram) Max() int64 { return h.max }

// Min is the smallest sample, exactly.
func (h *Histogram) Min() int64 { return h.min }

// Mean is the average sample.
func (h *Histogram) Mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// Quantile returns the value at quantile q in [0,1]: the upper edge of the
// bucket holding the ceil(q*n)-th smallest sample, capped by the maximum,
// so it never understates a latency. 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	if q >= 1 {
		return h.max
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(max(bucketHigh(i), h.min), h.max)
		}
	}
	return h.max
}

// Summary is a histogram's percentiles in milliseconds, as reported.
type Summary struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// Summarize reports h (recorded in nanoseconds) in milliseconds.
func (h *Histogram) Summarize() Summary {
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return Summary{
		Count: h.n,
		P50:   ms(h.Quantile(0.50)),
		P90:   ms(h.Quantile(0.90)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.max),
		Mean:  h.Mean() / 1e6,
	}
}
