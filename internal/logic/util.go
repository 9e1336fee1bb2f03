package logic

import (
	"sort"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
)

func byGateway(conns []*clusterpb.ConnRef) map[string][]uint64 {
	out := make(map[string][]uint64, 1)
	for _, c := range conns {
		out[c.Gateway] = append(out[c.Gateway], c.Conn)
	}
	return out
}

func sortOnline(u []OnlineUser) {
	sort.Slice(u, func(i, j int) bool { return u[i].Username < u[j].Username })
}
