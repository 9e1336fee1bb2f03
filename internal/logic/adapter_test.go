package logic_test

import (
	"github.com/magpie-im/magpie/internal/adapter"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/logic"
)

func init() {
	logic.SetHandle(func(s *logic.Service, req *clusterpb.Request, reply func([]byte)) {
		adapter.New(s).Handle(req, reply)
	})
}
