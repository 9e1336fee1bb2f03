package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 123456789, 1 << 40, math.MaxInt64} {
		b := bucketOf(v)
		if hi := bucketHigh(b); hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, want >= %d", v, hi, v)
		}
		if b > 0 {
			if lo := bucketHigh(b - 1); lo >= v {
				t.Errorf("bucketHigh(bucketOf(%d)-1) = %d, want < %d", v, lo, v)
			}
		}
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name    string
		samples []int64
		q       float64
		want    int64
	}{
		{"empty", nil, 0.5, 0},
		{"one", []int64{42}, 0.99, 42},
		{"exact range median", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.5, 5},
		{"exact range p90", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9, 9},
		{"max", []int64{1, 2, 3, 1_000_000}, 1, 1_000_000},
		{"p99 of outlier capped by max", []int64{5, 5, 5, 5, 5, 5, 5, 5, 5, 777_777}, 0.99, 777_777},
		{"negative counts as zero", []int64{-5}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, s := range tt.samples {
				h.Record(s)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Errorf("Quantile(%v) = %d, want %d", tt.q, got, tt.want)
			}
		})
	}
}

// TestQuantileAgainstSort checks the relative error bound against exact
// percentiles of sorted samples.
func TestQuantileAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, dist := range []string{"uniform", "lognormal"} {
		var h Histogram
		samples := make([]int64, 100_000)
		for i := range samples {
			var v int64
			if dist == "uniform" {
				v = r.Int64N(50_000_000)
			} else {
				v = int64(math.Exp(r.NormFloat64()*2 + 13))
			}
			samples[i] = v
			h.Record(v)
		}
		slices.Sort(samples)
		for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
			idx := int(math.Ceil(q*float64(len(samples)))) - 1
			exact := samples[idx]
			got := h.Quantile(q)
			if got < exact || float64(got-exact) > float64(exact)/halfSub+1 {
				t.Errorf("%s q=%v: got %d, exact %d (allowed +%.2f%%)", dist, q, got, exact, 100.0/halfSub)
			}
		}
		if h.Max() != samples[len(samples)-1] || h.Min() != samples[0] {
			t.Errorf("%s: min/max %d/%d, want %d/%d", dist, h.Min(), h.Max(), samples[0], samples[len(samples)-1])
		}
	}
}

func TestMerge(t *testing.T) {
	var a, b, all Histogram
	for i := int64(0); i < 1000; i++ {
		v := i * i * 37
		all.Record(v)
		if i%2 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	if m.Count() != all.Count() || m.Max() != all.Max() || m.Min() != all.Min() {
		t.Fatalf("merged count/min/max %d/%d/%d, want %d/%d/%d", m.Count(), m.Min(), m.Max(), all.Count(), all.Min(), all.Max())
	}
	for _, q := range []float64{0.1, 0.5, 0.9, 0.99, 0.999} {
		if got, want := m.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("merged Quantile(%v) = %d, want %d", q, got, want)
		}
	}
	m.Reset()
	if m.Count() != 0 || m.Quantile(0.5) != 0 {
		t.Errorf("after Reset: count %d, p50 %d; want 0, 0", m.Count(), m.Quantile(0.5))
	}
}

func TestSummarize(t *testing.T) {
	var h Histogram
	h.Record(2_000_000) // 2 ms
	s := h.Summarize()
	if s.Count != 1 || s.Max != 2 || s.P50 < 2 || s.P50 > 2.04 {
		t.Errorf("Summarize = %+v, want count 1, max 2 ms, p50 ~2 ms", s)
	}
}
