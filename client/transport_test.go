package client

import "testing"

func TestSplitTCPAddr(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		hostport string
		tls      bool
		err      bool
	}{
		{addr: "127.0.0.1:7070", hostport: "127.0.0.1:7070"},
		{addr: "tcp://chat.example.com:7070", hostport: "chat.example.com:7070"},
		{addr: "tls://chat.example.com:7443", hostport: "chat.example.com:7443", tls: true},
		{addr: "[::1]:7070", hostport: "[::1]:7070"},
		{addr: "quic://chat.example.com:7070", err: true},
	} {
		hp, useTLS, err := splitTCPAddr(tc.addr)
		if (err != nil) != tc.err || hp != tc.hostport || useTLS != tc.tls {
			t.Errorf("splitTCPAddr(%q) = %q, %v, %v; want %q, %v, error %v", tc.addr, hp, useTLS, err, tc.hostport, tc.tls, tc.err)
		}
	}
}

func TestGatewayAddrKeepsScheme(t *testing.T) {
	c := New(Options{Server: "https://chat.example.com:8443"})
	for _, tc := range []struct{ in, want string }{
		{"0.0.0.0:7070", "chat.example.com:7070"},
		{"tls://0.0.0.0:7443", "tls://chat.example.com:7443"},
		{"tls://gw1.example.com:7443", "tls://gw1.example.com:7443"},
		{"wss://0.0.0.0:8443/v1/ws", "wss://chat.example.com:8443/v1/ws"},
	} {
		if got := c.gatewayAddr(tc.in); got != tc.want {
			t.Errorf("gatewayAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
