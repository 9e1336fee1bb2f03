package logic

import "github.com/magpie-im/magpie/internal/cluster/clusterpb"

// handleFn is the adapter's Handler.Handle: a few tests here drive the long
// connection as a gateway does. The adapter imports logic, so only an
// external test file (adapter_test.go) can hand it in.
var handleFn func(s *Service, req *clusterpb.Request, reply func([]byte))

// SetHandle is for adapter_test.go.
func SetHandle(f func(s *Service, req *clusterpb.Request, reply func([]byte))) { handleFn = f }

func (s *Service) handle(req *clusterpb.Request, reply func([]byte)) { handleFn(s, req, reply) }
