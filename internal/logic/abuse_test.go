package logic

import (
	"net/netip"
	"testing"
)

// IPv6 clients share a bucket per /64, so one host cannot rotate through
// its prefix to escape the per-address limits.
func TestAddrKey(t *testing.T) {
	tests := []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
	}
	for _, tt := range tests {
		if ka, kb := addrKey(netip.MustParseAddr(tt.a)), addrKey(netip.MustParseAddr(tt.b)); ka != kb {
			t.Errorf("%s → %s and %s → %s, want one bucket", tt.a, ka, tt.b, kb)
		}
	}
	if addrKey(netip.MustParseAddr("192.0.2.1")) == addrKey(netip.MustParseAddr("192.0.2.2")) {
		t.Error("two IPv4 addresses share a bucket")
	}
}
