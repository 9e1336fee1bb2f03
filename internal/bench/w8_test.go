package bench

import "testing"

func TestParseW8(t *testing.T) {
	for _, tc := range []struct {
		text string
		qos  int
		ns   int64
		ok   bool
	}{
		{"w8 1 1700000000000000000", 1, 1700000000000000000, true},
		{"w8 0 5", 0, 5, true},
		{"w8 2 5", 0, 0, false},
		{"w8 1", 0, 0, false},
		{"w8 1 x", 1, 0, false},
		{"w4 1 5", 0, 0, false},
	} {
		qos, ns, ok := parseW8(tc.text)
		if ok != tc.ok || ok && (qos != tc.qos || ns != tc.ns) {
			t.Errorf("parseW8(%q) = %d, %d, %v; want %d, %d, %v", tc.text, qos, ns, ok, tc.qos, tc.ns, tc.ok)
		}
	}
}
