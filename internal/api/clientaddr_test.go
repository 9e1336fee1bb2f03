package api

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxies: the peer", nil, "198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"untrusted peer: header ignored", trusted, "198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"trusted peer, no header", trusted, "10.1.1.1:5000", nil, "10.1.1.1"},
		{"trusted peer: the forwarded client", trusted, "10.1.1.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"right-most untrusted wins over a spoofed left", trusted, "10.1.1.1:5000", []string{"192.0.2.66, 203.0.113.9"}, "203.0.113.9"},
		{"trusted hops are skipped", trusted, "10.1.1.1:5000", []string{"203.0.113.9, 10.2.2.2", "10.3.3.3"}, "203.0.113.9"},
		{"all hops trusted: the left-most", trusted, "10.1.1.1:5000", []string{"10.9.9.9, 10.2.2.2"}, "10.9.9.9"},
		{"garbage stops at the last trusted hop", trusted, "10.1.1.1:5000", []string{"203.0.113.9, nonsense"}, "10.1.1.1"},
		{"IPv6 peer and mapped client", trusted, "[fd00::1]:5000", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"an entry with a port", trusted, "10.1.1.1:5000", []string{"203.0.113.9:41234"}, "203.0.113.9"},
		{"IPv6 with a port", trusted, "10.1.1.1:5000", []string{"[2001:db8::9]:41234"}, "2001:db8::9"},
		{"IPv6 in brackets", trusted, "10.1.1.1:5000", []string{"[2001:db8::9]"}, "2001:db8::9"},
		{"trusted hop with a port is skipped", trusted, "10.1.1.1:5000", []string{"203.0.113.9, 10.2.2.2:80"}, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Handler{limits: Limits{TrustedProxies: tt.trusted}}
			r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := h.clientAddr(r); got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
