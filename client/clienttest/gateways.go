package clienttest

import (
	"net"
	"slices"
	"testing"
)

// Gateway returns the address of the TCP gateway the server starts with.
func (s *Server) Gateway() string { return s.ln.Addr().String() }

// AddGateway starts another TCP gateway on a loopback port and returns its
// address. It serves the same users and conversations; logins name it
// after RouteLogins.
func (s *Server) AddGateway(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		t.Fatal("clienttest: server closed")
	}
	if s.gateways == nil {
		s.gateways = map[string]net.Listener{}
	}
	s.gateways[addr] = ln
	s.wg.Add(1)
	s.mu.Unlock()
	go s.acceptTCP(ln)
	return addr
}

// RouteLogins makes later logins name the TCP gateway at addr, like a
// server that routes logins only to live, non-draining gateways.
func (s *Server) RouteLogins(addr string) {
	s.mu.Lock()
	s.loginGateway = addr
	s.mu.Unlock()
}

// KillGateway stops the TCP gateway at addr as kill -9 would: its listener
// closes (dials are refused) and its connections drop without a word.
func (s *Server) KillGateway(addr string) {
	s.mu.Lock()
	ln := s.gateways[addr]
	if addr == s.ln.Addr().String() {
		ln = s.ln
	}
	var cs []*conn
	for c := range s.conns {
		if c.gateway == addr {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for _, c := range cs {
		c.close()
	}
}

// OnlineAt reports how many connections user has on the TCP gateway at addr.
func (s *Server) OnlineAt(addr, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.user == name && c.gateway == addr {
			n++
		}
	}
	return n
}

// LoginDevices returns the device id of each successful login, in order.
func (s *Server) LoginDevices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.loginDevices)
}
