package clustertest

import (
	"fmt"
	"net"
	"strconv"
)

// PortRange is how many ports from Config.PortBase a run may use.
const PortRange = 1000

// ports hands out loopback listen addresses: from base upwards, skipping
// ports something already listens on, or (base 0) free ephemeral ones.
type ports struct {
	base, next int
}

func (p *ports) addr() (string, error) {
	if p.base == 0 {
		a, err := freeAddrs(1)
		if err != nil {
			return "", err
		}
		return a[0], nil
	}
	if p.next < p.base {
		p.next = p.base
	}
	for ; p.next < p.base+PortRange; p.next++ {
		a := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.next))
		l, err := net.Listen("tcp", a)
		if err != nil {
			continue // in use: someone else's
		}
		l.Close()
		p.next++
		return a, nil
	}
	return "", fmt.Errorf("no free port left in %d-%d (--port-base)", p.base, p.base+PortRange-1)
}

func (p *ports) addrs(n int) ([]string, error) {
	if p.base == 0 {
		return freeAddrs(n) // held open together, so all distinct
	}
	out := make([]string, 0, n)
	for range n {
		a, err := p.addr()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}
