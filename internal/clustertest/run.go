package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/magpie-im/magpie/internal/checker"
	"github.com/magpie-im/magpie/internal/crashpoint"
)

// RunConfig is a whole fault run.
type RunConfig struct {
	Topology Config
	Load     LoadConfig    // Servers is filled in from the topology
	Settle   time.Duration // traffic before, between and after faults; default 5s
	// Partition is how long a pause or a network partition lasts; default
	// 8s, past the default registry TTL.
	Partition time.Duration
	Out       io.Writer
	// Seed draws the mixed schedule (scenario 12); 0: one from the clock,
	// printed, so the run can be replayed with it.
	Seed int64
	// Mixed is how many faults the mixed schedule has; default 6, <0: none.
	Mixed int
	// Soak is the quiet traffic after the mixed schedule during which no
	// process may grow (goroutines, descriptors, memory); default 30s.
	Soak time.Duration
	// StormConns is how many raw connections the reconnect storm (scenario
	// 8) drops at once; default 1000, <0: no storm.
	StormConns int
	// SlowBurst is the burst of messages to the slow consumer's user
	// (scenario 7), 8 KiB each; default 1200, <0: no slow consumer. The
	// gateways run with --send-queue 256, so the burst overflows it and
	// the socket buffers.
	SlowBurst int
	// Churn is how long scenario 11 (multi-device churn) lasts; default
	// 20s, <0: none.
	Churn time.Duration
	// AcceptRate is every gateway's --accept-rate (with a storm); default
	// 500/s.
	AcceptRate float64
	// History is a file to write the checker's history to (JSON Lines,
	// docs/testing.md); `magpie check FILE` checks it again. Empty: none.
	History string
}

// Result is what a run found.
type Result struct {
	Report   *checker.Report
	Groups   int   // groups the load sent to (0: private messages only)
	Replaced int64 // SDK Clients the watchdog had to replace
	Failover []FailoverFigure
	Seed     int64        // of the mixed schedule
	Schedule []MixedFault // the mixed schedule drawn from Seed
	Soak     []SoakFigure // per process, at the start and end of the soak
	Storm    *StormFigure // scenario 8
	Phases   []PhaseFigure
	Slow     *SlowFigure  // scenario 7
	Churn    *ChurnFigure // scenario 11
	// MQTTChurn and MQTTAway: scenario 11's MQTT devices (LoadConfig.MQTTUsers).
	MQTTChurn *MQTTChurnFigure
	MQTTAway  *MQTTAway
	MQTT      []MQTTFigure // per MQTT device, at the end
	// CrashRetries: per crash point (scenario 9), the retries answered as
	// duplicates with the stored seq.
	CrashRetries []CrashFigure
	SameID       []SameIDFigure // scenario 10
	// Problems are the ways the cluster failed to heal that the checker
	// does not count: a gateway that would not drain, devices that never
	// came back or caught up, a final sync that did not finish, Clients
	// the watchdog had to replace. A correct cluster has none.
	Problems []string
}

// PhaseFigure is the latency of the sends made during one phase of the
// run: from a fault's start until the next one's.
type PhaseFigure struct {
	Name      string
	Took      time.Duration
	Ack, Live checker.Latency
}

// MQTTFigure is one MQTT device's connections over the run.
type MQTTFigure struct {
	Device string
	// Connects: CONNACKs; Present: of them, session present (every one
	// after the first, for a persistent session); Redelivered: deliveries
	// of a seq already shown (QoS 1 is at least once).
	Connects, Present, Redelivered int64
}

func (f MQTTFigure) String() string {
	return fmt.Sprintf("%s: %d connects, %d with session present, %d redeliveries", f.Device, f.Connects, f.Present, f.Redelivered)
}

// SameIDFigure is one round of scenario 10.
type SameIDFigure struct {
	When             string
	Sent, Duplicates int
}

// CrashFigure is what one crash point did.
type CrashFigure struct {
	Point   string
	Crashed bool
	DupAcks int64
}

// FailoverFigure is how fast the devices of a killed or drained gateway
// were all ready again.
type FailoverFigure struct {
	Fault    string
	Affected int
	P99, All time.Duration
}

// Run starts the topology and the load, injects the faults in sequence,
// heals, and checks. The returned error is about the harness (a process
// that would not start); the checker's verdict is in Result.Report.
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	if cfg.Settle == 0 {
		cfg.Settle = 5 * time.Second
	}
	if cfg.Partition == 0 {
		cfg.Partition = 8 * time.Second
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Seed == 0 {
		cfg.Seed = time.Now().UnixNano() % 1_000_000_000
	}
	if cfg.Mixed == 0 {
		cfg.Mixed = 6
	}
	if cfg.Soak == 0 {
		cfg.Soak = 30 * time.Second
	}
	if cfg.StormConns == 0 {
		cfg.StormConns = 1000
	}
	if cfg.AcceptRate == 0 {
		cfg.AcceptRate = 500
	}
	if cfg.Churn == 0 {
		cfg.Churn = 20 * time.Second
	}
	if cfg.SlowBurst == 0 {
		cfg.SlowBurst = 1200
	}
	if cfg.StormConns > 0 {
		cfg.Topology.ExtraGW = append(cfg.Topology.ExtraGW, "--accept-rate", fmt.Sprint(cfg.AcceptRate))
	}
	if cfg.SlowBurst > 0 {
		cfg.Topology.ExtraGW = append(cfg.Topology.ExtraGW, "--send-queue", "256")
	}
	if cfg.Load.MQTTUsers > 0 {
		cfg.Topology.MQTT = true
	}
	cfg.Topology.Log = cfg.Out
	cfg.Topology.Links = true // faults 7 and 8 cut network paths
	topo, err := Start(ctx, cfg.Topology)
	if err != nil {
		return nil, err
	}
	defer topo.Close()
	logf := topo.logf
	cfg.Load.Servers = topo.LogicURLs()
	var history *bufio.Writer
	if cfg.History != "" {
		f, err := os.Create(cfg.History)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		history = bufio.NewWriterSize(f, 1<<20)
		cfg.Load.History = history
	}
	load, err := StartLoad(ctx, cfg.Load)
	if err != nil {
		return nil, fmt.Errorf("load: %w\n%s", err, topo.Logs(20))
	}
	defer load.Close()
	res := &Result{Groups: load.Groups(), Seed: cfg.Seed}
	problem := func(format string, args ...any) {
		res.Problems = append(res.Problems, fmt.Sprintf(format, args...))
		logf("  PROBLEM: "+format, args...)
	}
	logf("load: %d users × %d devices and %d users with an MQTT device, %d groups, %.0f msgs/s per device", len(load.users), load.cfg.DevicesPerUser, len(load.mqtt), load.Groups(), load.cfg.Rate)

	settle := func() { sleepCtx(ctx, cfg.Settle) }
	// Phases: from one fault's start to the next's, each with the ACK and
	// live end-to-end latency of the sends invoked in it.
	phase, phaseStart := "steady (no fault)", time.Now()
	endPhase := func() {
		now := time.Now()
		res.Phases = append(res.Phases, PhaseFigure{Name: phase, Took: now.Sub(phaseStart),
			Ack: load.Rec.AckLatency(phaseStart, now), Live: load.Rec.LiveLatency(phaseStart, now, nil)})
	}
	begin := func(format string, args ...any) {
		endPhase()
		phase, phaseStart = fmt.Sprintf(format, args...), time.Now()
		logf("fault: %s", phase)
	}
	// stalled shows what a fault did to the sends made while it lasted.
	stalled := func(from time.Time) {
		invoked, acked, slowest := load.Rec.Window(from, time.Now())
		logf("  sends during the fault: %d, %d acknowledged so far, slowest ACK %v", invoked, acked, slowest.Round(time.Millisecond))
	}
	caughtUp := func(fault string, since time.Time) {
		took, ok := waitCaughtUp(ctx, load, since, 120*time.Second)
		load.Rec.Recovered(fault, took, ok)
		if !ok {
			problem("%s: devices had not caught up after %v", fault, took.Round(time.Millisecond))
		}
		logf("  %s: caught up after %v (ok=%v); not ready now: %d; replaced so far: %d", fault, took.Round(time.Millisecond), ok, load.NotReady(), load.Replaced.Load())
	}
	failover := func(fault string, kill func()) {
		// Watch from before the fault: kill may return only after the
		// devices are back (a drained gateway exits after its clients left).
		start := time.Now()
		type figures struct {
			affected int
			p99, all time.Duration
		}
		watched := make(chan figures, 1)
		go func() {
			affected, p99, all := waitReconnected(ctx, load, start, reconnectWithin)
			watched <- figures{affected, p99, all}
		}()
		kill()
		f := <-watched
		affected, p99, all := f.affected, f.p99, f.all
		res.Failover = append(res.Failover, FailoverFigure{Fault: fault, Affected: affected, P99: p99, All: all})
		switch {
		case affected == 0:
			problem("%s: no device noticed the gateway going", fault)
		case all >= reconnectWithin:
			problem("%s: not every device was ready again within %v", fault, reconnectWithin)
		}
		logf("  %s: %d devices reconnected, 99%% after %v, all after %v", fault, affected, p99.Round(time.Millisecond), all.Round(time.Millisecond))
		caughtUp(fault, time.Now())
	}
	settle()

	// 1. SIGTERM a gateway: it drains, its clients reconnect elsewhere.
	gw := topo.Gateways[0]
	begin("SIGTERM %s (drain)", gw.Name)
	failover("SIGTERM gateway", func() {
		gw.Signal(syscall.SIGTERM)
		if !gw.Wait(30 * time.Second) {
			problem("%s did not exit within 30s of SIGTERM", gw.Name)
		}
	})
	if err := topo.Restart(ctx, gw); err != nil {
		return nil, err
	}
	if err := topo.WaitGateways(ctx, len(topo.Gateways), 60*time.Second); err != nil {
		return nil, err
	}
	settle()

	// 2. kill -9 a gateway.
	gw = topo.Gateways[1]
	begin("kill -9 %s", gw.Name)
	failover("kill -9 gateway", gw.Kill)
	if err := topo.Restart(ctx, gw); err != nil {
		return nil, err
	}
	if err := topo.WaitGateways(ctx, len(topo.Gateways), 60*time.Second); err != nil {
		return nil, err
	}
	settle()

	// 3. kill -9 a logic node, restart it.
	lg := topo.Logic[0]
	begin("kill -9 %s", lg.Name)
	lg.Kill()
	settle()
	if err := topo.Restart(ctx, lg); err != nil {
		return nil, err
	}
	caughtUp("kill -9 logic", time.Now())
	settle()

	// 4. Restart PostgreSQL (immediate mode).
	begin("restart PostgreSQL -m immediate")
	if err := topo.RestartPostgres(ctx); err != nil {
		return nil, err
	}
	caughtUp("restart PostgreSQL", time.Now())
	settle()

	// 5. kill -9 a NATS node, restart it.
	begin("kill -9 nats-2")
	topo.NATS[2].Kill()
	settle()
	if err := topo.RestartNATS(2); err != nil {
		return nil, err
	}
	caughtUp("kill -9 NATS node", time.Now())
	settle()

	// 6. Pause a NATS node (SIGSTOP): its clients' connections hang.
	begin("SIGSTOP nats-1 for %v", cfg.Partition)
	from := time.Now()
	topo.NATS[1].Signal(syscall.SIGSTOP)
	sleepCtx(ctx, cfg.Partition)
	topo.NATS[1].Signal(syscall.SIGCONT)
	caughtUp("SIGSTOP NATS node", time.Now())
	stalled(from)
	settle()

	// 7. Cut a gateway off from NATS for longer than the registry TTL:
	// the cluster buries it; its clients stay connected to it, and
	// after the heal they catch up by gap detection.
	gw = topo.Gateways[len(topo.Gateways)-1]
	begin("partition %s from NATS for %v", gw.Name, cfg.Partition)
	from = time.Now()
	topo.PartitionGatewayNATS()
	sleepCtx(ctx, cfg.Partition)
	topo.HealGatewayNATS()
	caughtUp("gateway partitioned from NATS", time.Now())
	stalled(from)
	settle()

	// 8. Cut a logic node off from PostgreSQL, then break its
	// connections: its sends fail or stay unknown, never ACKed.
	lg = topo.Logic[len(topo.Logic)-1]
	begin("partition %s from PostgreSQL for %v, then reset", lg.Name, cfg.Partition)
	from = time.Now()
	topo.LogicDB.Partition()
	sleepCtx(ctx, cfg.Partition)
	topo.LogicDB.Reset()
	topo.LogicDB.Heal()
	caughtUp("logic partitioned from PostgreSQL", time.Now())
	stalled(from)
	settle()

	// 9. Crash points (a faulthooks build of magpie): a logic node kills
	// itself right after a batch commits (nothing ACKed or published),
	// then right after publishing a batch but before its ACKs. The senders
	// retry with the same client ids; the retries must come back as
	// duplicates with the stored seqs (the checker holds every figure).
	if cfg.Topology.MagpieHooks != "" {
		for _, point := range []string{crashpoint.CommitPublish, crashpoint.PublishACK} {
			lg := topo.Logic[0]
			fault := "crash " + lg.Name + " at " + point
			// The batch the crash lands on may hold only MQTT devices'
			// messages (about one in nine of the senders): their retries
			// carry no duplicate flag to count, so the crash is repeated,
			// up to three times, until an SDK sender's retry shows it.
			var crashed bool
			var n int64
			for attempt := 1; attempt <= 3 && n == 0 && ctx.Err() == nil; attempt++ {
				begin("%s (the 20th time it is reached; attempt %d)", fault, attempt)
				dups := load.DupAcks.Load()
				from := time.Now()
				var err error
				crashed, err = topo.CrashAt(ctx, lg, point, 20, 60*time.Second)
				if err != nil {
					return nil, err
				}
				if !crashed {
					problem("%s: the node did not reach the crash point within 60s", fault)
				}
				caughtUp(fault, time.Now())
				// The retries come after the gateways' request timeout.
				deadline := time.Now().Add(45 * time.Second)
				for load.DupAcks.Load() == dups && time.Now().Before(deadline) && ctx.Err() == nil {
					time.Sleep(100 * time.Millisecond)
				}
				n = load.DupAcks.Load() - dups
				logf("  %s: %d retries answered as duplicates with the stored seq", fault, n)
				stalled(from)
				settle()
				if !crashed {
					break
				}
			}
			res.CrashRetries = append(res.CrashRetries, CrashFigure{Point: point, Crashed: crashed, DupAcks: n})
			if crashed && n == 0 {
				problem("%s: in three crashes, no retry of a stored message was answered as a duplicate", fault)
			}
		}
	}

	// 10. The same client ids through two gateways at once: each must be
	// stored once (one ACK new, the other a duplicate with the same seq).
	// The same ids again much later are checked before the healing.
	sameIDs := make([]string, 10)
	for i := range sameIDs {
		sameIDs[i] = fmt.Sprintf("same-%s-%d", randHex(3), i)
	}
	a, b := load.SplitUser()
	if a == nil {
		problem("same id through two gateways: no user has devices ready on two gateways")
	} else {
		begin("%d client ids sent at once from %s (%s) and %s (%s)", len(sameIDs), a.name, a.client().Gateway(), b.name, b.client().Gateway())
		dups := load.SendSame(sameIDs, a, b)
		res.SameID = append(res.SameID, SameIDFigure{When: "at once, two gateways", Sent: 2 * len(sameIDs), Duplicates: dups})
		logf("  same ids at once: %d sends, %d answered as duplicates (want %d)", 2*len(sameIDs), dups, len(sameIDs))
		if dups != len(sameIDs) {
			problem("same id through two gateways: %d of %d pairs answered as one new and one duplicate", dups, len(sameIDs))
		}
	}
	settle()

	// 11. Multi-device churn: devices flap, users leave and rejoin groups
	// the load sends to; every view must hold exactly its windows.
	if cfg.Churn > 0 {
		begin("multi-device churn for %v: devices flapping, users leaving and rejoining groups", cfg.Churn)
		mq := make(chan *MQTTChurnFigure, 1)
		go func() { mq <- load.MQTTChurn(ctx, cfg.Churn, cfg.Seed) }()
		f, err := load.Churn(ctx, ChurnConfig{For: cfg.Churn, Seed: cfg.Seed})
		res.MQTTChurn = <-mq
		if err != nil {
			return nil, err
		}
		res.Churn = f
		logf("  churn: %s", f)
		if f.Flaps == 0 || f.Joins == 0 || f.Leaves == 0 {
			problem("churn: no flap, join or leave happened (%s)", f)
		}
		if len(load.mqtt) > 0 {
			logf("  churn: %s", res.MQTTChurn)
			if m := res.MQTTChurn; m.Joins == 0 || m.Leaves == 0 || (len(load.mqtt) > 1 && m.Flaps == 0) {
				problem("churn: no MQTT flap, join or leave happened (%s)", m)
			}
		}
		caughtUp("multi-device churn", time.Now())
		settle()
	}

	// 11, MQTT: a device away while messages to it are sent, back with
	// its persistent session (clean start 0): the gateway catches it up.
	if len(load.mqtt) > 0 {
		const away = 5 * time.Second
		begin("an MQTT device away for %v, back with its persistent session", away)
		a := load.AwayMQTT(ctx, away)
		res.MQTTAway = a
		logf("  mqtt: %s", a)
		switch {
		case !a.SessionPresent:
			problem("mqtt: the persistent session's CONNACK did not say session present (%s)", a)
		case a.Acked == 0:
			problem("mqtt: none of the scenario's sends to the away device was ACKed (%s)", a)
		case a.MissedBack == 0:
			problem("mqtt: the device had nothing to catch up when it came back (%s)", a)
		case !a.OK:
			problem("mqtt: the device did not catch up (%s)", a)
		}
		settle()
	}

	// 7. A slow consumer: cut at its queue cap, the rest unharmed, and it
	// catches up after reconnecting.
	if cfg.SlowBurst > 0 {
		begin("a connection that stops reading, and a burst of %d messages to its user", cfg.SlowBurst)
		f, err := topo.SlowConsumer(ctx, load, cfg.SlowBurst)
		if f != nil && err != nil && f.Missing > 0 {
			problem("slow consumer: %v", err) // the device could not come back: a finding, not a harness failure
			err = nil
		}
		if f != nil {
			res.Slow = f
			logf("  slow consumer: %s", f)
			switch {
			case !f.Cut:
				problem("slow consumer: not cut (%s)", f.How)
			case f.Missing > 0:
				problem("slow consumer: %d messages never shown after it reconnected", f.Missing)
			case f.RSSMax > f.RSSBefore+64<<20:
				problem("slow consumer: its gateway grew from %d to %d MiB", f.RSSBefore>>20, f.RSSMax>>20)
			case f.WithSlow.P50 > 2*f.Base.P50+10*time.Millisecond:
				problem("slow consumer: the other traffic's live p50 went from %v to %v", f.Base.P50, f.WithSlow.P50)
			}
		}
		if err != nil {
			return nil, err
		}
		settle()
	}

	// 8. A reconnect storm: kill -9 a gateway holding StormConns more
	// connections; they come back through the accept rate.
	if cfg.StormConns > 0 {
		begin("reconnect storm: kill -9 gw-0 holding %d more connections (accept rate %.0f/s per gateway)", cfg.StormConns, cfg.AcceptRate)
		f, err := topo.Storm(ctx, load, 0, cfg.StormConns, time.Second)
		if f != nil {
			res.Storm = f
			logf("  reconnect storm: %s", f)
			if f.Reauthed < f.Conns {
				problem("reconnect storm: %d of %d connections never re-authenticated", f.Conns-f.Reauthed, f.Conns)
			}
		}
		if err != nil {
			return nil, err
		}
		settle()
	}

	// 12. A mixed schedule drawn from the seed, then a soak.
	if cfg.Mixed > 0 {
		res.Schedule = DrawSchedule(cfg.Seed, cfg.Mixed, len(topo.Gateways), len(topo.Logic), cfg.Topology.MagpieHooks != "")
		logf("mixed schedule of %d faults, seed %d (replay: --seed %d):", len(res.Schedule), cfg.Seed, cfg.Seed)
		for i, f := range res.Schedule {
			logf("  %d. %s; then %v of traffic", i+1, f, f.Gap)
		}
		from := time.Now()
		for i, f := range res.Schedule {
			begin("mixed %d/%d: %s", i+1, len(res.Schedule), f)
			if err := topo.runMixed(ctx, f, problem); err != nil {
				return nil, err
			}
			sleepCtx(ctx, f.Gap)
		}
		caughtUp("mixed schedule", time.Now())
		stalled(from)

		begin("soak: %v of traffic, no faults", cfg.Soak)
		settle() // reconnects and retries of the schedule settle first
		// Samples every soakEvery; a process grew if the least of its last
		// third is past the bounds over the least of its first third
		// (minima: requests in flight come and go, a leak stays).
		var samples []map[string]Usage
		for end := time.Now().Add(cfg.Soak); ; {
			samples = append(samples, topo.usage(ctx))
			if !time.Now().Add(soakEvery).Before(end) || ctx.Err() != nil {
				break
			}
			sleepCtx(ctx, soakEvery)
		}
		for _, p := range topo.procs() {
			f, ok := soakFigure(p.Name, samples)
			if !ok {
				continue
			}
			res.Soak = append(res.Soak, f)
			logf("  soak %s", f)
			if g := f.Grew(); g != "" {
				problem("soak: %s grew: %s (stacks: %s)", p.Name, g, topo.DumpGoroutines(ctx, p.Name))
			}
		}
		caughtUp("soak", time.Now())
	}

	if a != nil {
		// ...and much later, from the other device's current gateway.
		dups := load.SendSame(sameIDs, b)
		res.SameID = append(res.SameID, SameIDFigure{When: "again, later", Sent: len(sameIDs), Duplicates: dups})
		logf("  same ids again later from %s (%s): %d of %d answered as duplicates", b.name, b.client().Gateway(), dups, len(sameIDs))
		if dups != len(sameIDs) {
			problem("same id much later: %d of %d answered as duplicates", dups, len(sameIDs))
		}
	}

	endPhase()
	logf("healing: stop senders, final sync, fresh devices")
	load.StopSending()
	if err := load.FinalSync(ctx, 120*time.Second); err != nil {
		problem("final sync: %v", err)
	}
	if err := load.FreshDevices(ctx, 120*time.Second); err != nil {
		problem("fresh devices: %v", err)
	}
	if err := load.Receipts(ctx); err != nil {
		problem("receipts: %v", err)
	}
	for _, d := range load.mqtt {
		f := MQTTFigure{Device: d.name, Connects: d.Connects.Load(), Present: d.Present.Load(), Redelivered: d.Redelivered.Load()}
		res.MQTT = append(res.MQTT, f)
		logf("  mqtt %s", f)
		if f.Present < f.Connects-1 {
			problem("mqtt %s: %d of %d reconnects without session present", d.name, f.Connects-1-f.Present, f.Connects-1)
		}
	}
	res.Report = load.Rec.Check()
	if history != nil {
		if err := load.Rec.Record(nil); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		if err := history.Flush(); err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
	}
	if res.Replaced = load.Replaced.Load(); res.Replaced > 0 {
		problem("the watchdog replaced %d stuck SDK Clients: %s", res.Replaced, strings.Join(load.ReplacedWhy(), "; "))
	}
	return res, nil
}

// reconnectWithin bounds how long a failover may take before the run
// counts it as failed: far past the 10 s target, so only a device that
// never comes back trips it.
const reconnectWithin = 120 * time.Second

// waitCaughtUp polls until every device shows every message acknowledged
// before since.
func waitCaughtUp(ctx context.Context, l *Load, since time.Time, d time.Duration) (time.Duration, bool) {
	deadline := since.Add(d)
	for {
		start := time.Now()
		if l.Rec.Missing(since) == 0 {
			return time.Since(since), true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return time.Since(since), false
		}
		// Missing walks the whole history under the recorder's lock
		// (half a second at the load profile's 300,000 sends): polled
		// back to back it starved the devices' recording, which is what
		// it waits for. At most a third of the time.
		time.Sleep(max(20*time.Millisecond, 2*time.Since(start)))
	}
}

// waitReconnected watches the devices after a gateway went away: the ones
// that drop are the affected; it returns how many, and when 99 % and all of
// them were ready again.
func waitReconnected(ctx context.Context, l *Load, start time.Time, d time.Duration) (affected int, p99, all time.Duration) {
	down := map[*Device]bool{}
	back := map[*Device]time.Duration{}
	deadline := start.Add(d)
	quiet := start.Add(2 * time.Second) // by then everyone affected noticed
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, dev := range l.devs {
			ready := dev.Ready()
			if !ready && !down[dev] {
				down[dev] = true
				delete(back, dev)
			}
			if ready && down[dev] {
				if _, ok := back[dev]; !ok {
					back[dev] = time.Since(start)
				}
			}
		}
		if time.Now().After(quiet) && len(down) > 0 && len(back) == len(down) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var ts []time.Duration
	for _, t := range back {
		ts = append(ts, t)
	}
	affected = len(down)
	if affected == 0 {
		return 0, 0, 0
	}
	slices.Sort(ts)
	if len(ts) < affected { // some never came back
		return affected, d, d
	}
	idx := (affected*99 + 99) / 100
	return affected, ts[min(idx, len(ts))-1], ts[len(ts)-1]
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// PrintPhases writes the phases as a Markdown table.
func PrintPhases(w io.Writer, phases []PhaseFigure) {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintln(w, "| phase | length | sends ACKed | ACK p50 / p99 ms | send → shown live p50 / p99 ms |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, p := range phases {
		fmt.Fprintf(w, "| %s | %v | %d | %s / %s | %s / %s |\n", p.Name, p.Took.Round(100*time.Millisecond), p.Ack.N,
			ms(p.Ack.P50), ms(p.Ack.P99), ms(p.Live.P50), ms(p.Live.P99))
	}
}
