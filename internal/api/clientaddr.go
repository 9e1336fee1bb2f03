package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/magpie-im/magpie/internal/logic"
)

// Limits are the API's own abuse limits (the rest live in logic).
type Limits struct {
	// TrustedProxies (--trusted-proxies) are the peers whose
	// X-Forwarded-For is believed; nil trusts no one.
	TrustedProxies []netip.Prefix
	// A download must progress at DownloadMinRate bytes per second after
	// DownloadGrace, or it is cut (see download); zero rate: never cut.
	DownloadMinRate int64
	DownloadGrace   time.Duration
}

// SetLimits sets the limits; call it before serving.
func (h *Handler) SetLimits(l Limits) { h.limits = l }

func (h *Handler) trustedPeer(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range h.limits.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientOf is who sent r, for the per-address limits of logic.
// clientOf is who registers or logs in: the address the limits count,
// the app named in the body and the host name an app may claim.
func (h *Handler) clientOf(r *http.Request, app string) logic.Client {
	return logic.Client{Addr: h.clientAddr(r), App: app, Host: r.Host}
}

// clientAddr is the client's address: the TCP peer, unless the peer is a
// trusted proxy, in which case X-Forwarded-For is walked from the right
// (the entry the nearest proxy appended) past every trusted hop; the
// first untrusted entry is the client. Entries left of it were written by
// the client itself and are ignored, so a client cannot pick its address
// by sending its own header. An unparsable entry stops the walk at the
// last trusted hop, which is then the address limited.
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	addr = addr.Unmap().WithZone("")
	if !h.trustedPeer(addr) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := parseHop(parts[j])
			if err != nil {
				return addr
			}
			addr = a.Unmap().WithZone("")
			if !h.trustedPeer(addr) {
				return addr
			}
		}
	}
	return addr
}

// parseHop reads one X-Forwarded-For entry: an address, or one with a
// port or in brackets ("203.0.113.9:41234", "[2001:db8::1]:41234"), as
// some proxies write them. Refusing those stopped the walk at the proxy,
// so every client shared its budgets, or, for a proxy on loopback (in
// --limit-exempt by default), was exempt from them.
func parseHop(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err == nil {
		return a, nil
	}
	if ap, perr := netip.ParseAddrPort(s); perr == nil {
		return ap.Addr(), nil
	}
	if in, ok := strings.CutPrefix(s, "["); ok {
		if in, ok = strings.CutSuffix(in, "]"); ok {
			return netip.ParseAddr(in)
		}
	}
	return netip.Addr{}, err
}

type handlerStats struct {
	downloadsCut atomic.Uint64
}

// Stats are the handler's counters, for the metrics endpoint.
type Stats struct {
	DownloadsCut uint64 // downloads ended because the reader fell below the minimum rate
}

// Stats returns the current counters.
func (h *Handler) Stats() Stats { return Stats{DownloadsCut: h.stats.downloadsCut.Load()} }
