package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/magpie-im/magpie/internal/crashpoint"
)

// A mixed schedule (scenario 12): faults drawn from a seed, one after
// another with short random gaps and no wait for the devices to catch up in
// between. The same seed and topology size draw the same schedule, so a
// failing run can be replayed (the load's timing is not replayed).

// MixedFault is one drawn fault.
type MixedFault struct {
	Kind   string
	Target int           // gateway, logic or NATS index, by kind
	For    time.Duration // pauses and partitions
	Gap    time.Duration // traffic after it, before the next
}

var mixedKinds = []string{
	"sigterm-gateway", "kill-gateway", "kill-logic", "restart-postgres", "kill-nats",
	"pause-nats", "partition-gateway-nats", "partition-logic-db",
	"crash-" + crashpoint.CommitPublish, "crash-" + crashpoint.PublishACK,
}

func (f MixedFault) String() string {
	switch f.Kind {
	case "sigterm-gateway":
		return fmt.Sprintf("SIGTERM gw-%d (drain), restart", f.Target)
	case "kill-gateway":
		return fmt.Sprintf("kill -9 gw-%d, restart", f.Target)
	case "kill-logic":
		return fmt.Sprintf("kill -9 logic-%d, restart", f.Target)
	case "restart-postgres":
		return "restart PostgreSQL (immediate)"
	case "kill-nats":
		return fmt.Sprintf("kill -9 nats-%d, restart", f.Target)
	case "pause-nats":
		return fmt.Sprintf("SIGSTOP nats-%d for %v", f.Target, f.For)
	case "partition-gateway-nats":
		return fmt.Sprintf("partition gw-%d from NATS for %v", f.Target, f.For)
	case "partition-logic-db":
		return fmt.Sprintf("partition logic-%d from PostgreSQL for %v, then reset", f.Target, f.For)
	default:
		return fmt.Sprintf("crash logic-%d at %s", f.Target, f.Kind[len("crash-"):])
	}
}

// DrawSchedule draws n faults from seed for a topology of the given size;
// crash points only with hooks (a faulthooks binary).
func DrawSchedule(seed int64, n, gateways, logic int, hooks bool) []MixedFault {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d6167706965)) // "magpie"
	kinds := mixedKinds
	if !hooks {
		kinds = kinds[:len(kinds)-2]
	}
	out := make([]MixedFault, 0, n)
	for range n {
		f := MixedFault{Kind: kinds[rng.IntN(len(kinds))],
			For: time.Duration(2+rng.IntN(7)) * time.Second,
			Gap: time.Duration(500+rng.IntN(2500)) * time.Millisecond}
		switch f.Kind {
		case "sigterm-gateway", "kill-gateway":
			f.Target = rng.IntN(gateways)
		case "kill-logic":
			f.Target = rng.IntN(logic)
		case "kill-nats", "pause-nats":
			f.Target = rng.IntN(3)
		case "partition-gateway-nats":
			f.Target = gateways - 1 // the one behind Links
		case "partition-logic-db":
			f.Target = logic - 1
		}
		out = append(out, f)
	}
	return out
}

// runMixed injects one fault and undoes it (restarts what it stopped).
func (t *Topology) runMixed(ctx context.Context, f MixedFault, problem func(string, ...any)) error {
	switch f.Kind {
	case "sigterm-gateway", "kill-gateway":
		gw := t.Gateways[f.Target]
		if f.Kind == "kill-gateway" {
			gw.Kill()
		} else {
			gw.Signal(syscall.SIGTERM)
			if !gw.Wait(30 * time.Second) {
				problem("%s did not exit within 30s of SIGTERM", gw.Name)
				gw.Kill()
			}
		}
		if err := t.Restart(ctx, gw); err != nil {
			return err
		}
		return t.WaitGateways(ctx, len(t.Gateways), 60*time.Second)
	case "kill-logic":
		lg := t.Logic[f.Target]
		lg.Kill()
		sleepCtx(ctx, time.Second)
		return t.Restart(ctx, lg)
	case "restart-postgres":
		return t.RestartPostgres(ctx)
	case "kill-nats":
		t.NATS[f.Target].Kill()
		sleepCtx(ctx, time.Second)
		return t.RestartNATS(f.Target)
	case "pause-nats":
		t.NATS[f.Target].Signal(syscall.SIGSTOP)
		sleepCtx(ctx, f.For)
		t.NATS[f.Target].Signal(syscall.SIGCONT)
	case "partition-gateway-nats":
		t.PartitionGatewayNATS()
		sleepCtx(ctx, f.For)
		t.HealGatewayNATS()
	case "partition-logic-db":
		t.LogicDB.Partition()
		sleepCtx(ctx, f.For)
		t.LogicDB.Reset()
		t.LogicDB.Heal()
	default: // crash points
		crashed, err := t.CrashAt(ctx, t.Logic[f.Target], f.Kind[len("crash-"):], 20, 60*time.Second)
		if err != nil {
			return err
		}
		if !crashed {
			problem("%s: the node did not reach the crash point within 60s", f)
		}
	}
	return nil
}
