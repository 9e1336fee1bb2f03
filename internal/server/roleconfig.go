package server

import (
	"time"

	"github.com/magpie-im/magpie/internal/config"
	"github.com/magpie-im/magpie/internal/gateway"
	"github.com/magpie-im/magpie/internal/logic"
)

// The roles' own Config types, from the config groups they read. The role
// packages do not import config (they stay usable, and testable, without
// the flag layer), so this file is the one place where a setting's name
// in config meets its name in a role; what only the node knows at start
// (the token secret, the store's commit loops, callbacks) is filled in by
// the caller.

// gatewayConfig is the gateway role's configuration.
func gatewayConfig(id string, g config.Gateway) gateway.Config {
	return gateway.Config{
		ID: id, AuthTimeout: g.AuthTimeout, HeartbeatInterval: g.Heartbeat, HeartbeatTimeout: g.HeartbeatTO,
		SendQueue: g.SendQueue, RateLimit: g.ConnRate, RateBurst: int(2 * g.ConnRate), AllowedOrigins: g.AllowedOrigins,
		AcceptRate: g.AcceptRate,
	}
}

// logicConfig is the logic role's configuration; heartbeat is the interval
// the gateways ask of clients, which logic tells them at login.
func logicConfig(l config.Logic, lim config.Limits, heartbeat time.Duration) logic.Config {
	return logic.Config{
		TokenTTL: l.TokenTTL, DevicePolicy: logic.DevicePolicy(l.DevicePolicy), RejectNewDevice: l.DeviceReject,
		MaxBatch: l.MaxBatch, CommitWindow: l.CommitWindow, CommitWorkers: l.CommitWorkers, HeartbeatSecs: uint32(heartbeat / time.Second),
		MaxConnsPerUser: l.MaxConnsPerUser, MaxGroupSize: l.MaxGroupSize, Admins: l.Admins,
		AllowBroadcast: l.AllowBroadcast, RequireFriendship: l.RequireFriendship, RecallWindow: l.RecallWindow,
		OnlineVisibility: logic.OnlineVisibility(l.OnlineVisibility), ScheduleHorizon: scheduleHorizon(l.ScheduleHorizon),

		LoginIPRate: lim.LoginIPRate, LoginGlobalRate: lim.LoginGlobalRate, RegisterIPRate: lim.RegisterIPRate,
		LimitExempt: lim.LimitExempt, UserSendRate: lim.UserSendRate, PushRate: lim.PushRate,
		MaxSessionsPerUser: lim.MaxSessionsPerUser, HashConcurrency: lim.HashConcurrency, HashWait: lim.HashWait,
	}
}

// scheduleHorizon maps --schedule-horizon 0 (scheduling off) to logic's -1.
func scheduleHorizon(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
