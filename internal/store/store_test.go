package store

import (
	"fmt"
	"math"
	"testing"
)

// TestPrivateConversationID: the id is "p_<lower>_<higher>" for both
// orders, as it was when fmt built it (stored ids must not change).
func TestPrivateConversationID(t *testing.T) {
	for _, c := range [][2]int64{{1, 2}, {2, 1}, {7, 7}, {-5, 3}, {0, math.MaxInt64}, {math.MinInt64, math.MaxInt64}} {
		lo, hi := min(c[0], c[1]), max(c[0], c[1])
		if got, want := PrivateConversationID(c[0], c[1]), fmt.Sprintf("p_%d_%d", lo, hi); got != want {
			t.Errorf("PrivateConversationID(%d, %d) = %q, want %q", c[0], c[1], got, want)
		}
	}
}
