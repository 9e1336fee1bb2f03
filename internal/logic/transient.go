package logic

import (
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/store"
)

// deliverTransient pushes a message that is not stored (seq 0): to the
// given users' devices, or with all set to every connection on every live
// gateway (one publish per gateway). Best effort by design: nothing to
// sync later.
func (s *Service) deliverTransient(userIDs []int64, all bool, msg *store.Message) int {
	env := s.enc.Transient(*msg)
	if all {
		gws := s.gateways.Live()
		for _, gw := range gws {
			if err := s.out.Deliver(gw.Id, &clusterpb.Delivery{Envelope: env, Broadcast: true}); err != nil {
				s.log.Warn("broadcast delivery", "gateway", gw.Id, "err", err)
			}
		}
		return len(gws)
	}
	var conns []*clusterpb.ConnRef
	for _, id := range userIDs {
		conns = s.presence.AppendConns(conns, id)
	}
	if len(conns) > 0 {
		s.publish(conns, env)
	}
	return len(conns)
}

// notify pushes a notice to the online devices of each user (best effort,
// never stored: what it is about stays listed by the HTTP API). The notice
// is encoded once for all of them.
func (s *Service) notify(userIDs []int64, n store.Notice) {
	var conns []*clusterpb.ConnRef
	for _, id := range userIDs {
		conns = s.presence.AppendConns(conns, id)
	}
	if len(conns) == 0 {
		return
	}
	if n.At.IsZero() {
		n.At = s.now()
	}
	s.publish(conns, s.enc.Notice(n))
}
