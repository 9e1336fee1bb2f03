package bench

import "testing"

func TestConvLedger(t *testing.T) {
	tests := []struct {
		name       string
		deliveries []uint64
		acked      []uint64
		wantDup    uint64
		wantReord  uint64
		wantLost   uint64
		wantDelivd uint64
	}{
		{"in order", []uint64{1, 2, 3}, []uint64{1, 2, 3}, 0, 0, 0, 3},
		{"duplicate", []uint64{1, 2, 2, 3}, []uint64{1, 2, 3}, 1, 0, 0, 3},
		{"reordered", []uint64{1, 3, 2}, []uint64{1, 2, 3}, 0, 1, 0, 3},
		{"lost middle", []uint64{1, 3}, []uint64{1, 2, 3}, 0, 0, 1, 2},
		{"lost tail", []uint64{1}, []uint64{1, 2, 3}, 0, 0, 2, 1},
		{"delivered but not acked (failed send) is not lost", []uint64{1, 2}, []uint64{1}, 0, 0, 0, 2},
		{"gap filled late counts reordered once", []uint64{1, 4, 2, 3, 3}, []uint64{1, 2, 3, 4}, 1, 2, 0, 4},
		{"large seqs grow the bitset", []uint64{1000, 70000}, []uint64{1000, 70000, 70001}, 0, 0, 1, 2},
		{"nothing", nil, nil, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l convLedger
			for _, s := range tt.deliveries {
				l.observe(s)
			}
			if l.duplicated != tt.wantDup {
				t.Errorf("duplicated = %d, want %d", l.duplicated, tt.wantDup)
			}
			if l.reordered != tt.wantReord {
				t.Errorf("reordered = %d, want %d", l.reordered, tt.wantReord)
			}
			if l.delivered != tt.wantDelivd {
				t.Errorf("delivered = %d, want %d", l.delivered, tt.wantDelivd)
			}
			if got := l.missing(tt.acked); got != tt.wantLost {
				t.Errorf("lost = %d, want %d", got, tt.wantLost)
			}
		})
	}
}

func TestObserveKinds(t *testing.T) {
	var l convLedger
	steps := []struct {
		seq  uint64
		want deliveryKind
	}{
		{1, deliveredInOrder}, {3, deliveredInOrder}, {2, deliveredReordered}, {3, deliveredDuplicate}, {4, deliveredInOrder},
	}
	for _, s := range steps {
		if got := l.observe(s.seq); got != s.want {
			t.Errorf("observe(%d) = %v, want %v", s.seq, got, s.want)
		}
	}
}
