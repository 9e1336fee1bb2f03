package checker

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is the checker's verdict on a run.
type Report struct {
	Attempted         int `json:"attempted"`
	Acknowledged      int `json:"acknowledged"`
	Failed            int `json:"failed"`     // refused with a definite error, not shown anywhere
	Lost              int `json:"lost"`       // acknowledged messages missing from at least one expected device
	LostPairs         int `json:"lost_pairs"` // (message, device) pairs behind Lost
	Unknown           int `json:"unknown"`    // not acknowledged, not seen
	Recovered         int `json:"recovered"`  // not acknowledged, seen anyway
	Unexpected        int `json:"unexpected"`
	DupStored         int `json:"duplicated_stored"`
	DupShown          int `json:"duplicated_shown"`
	OutOfOrder        int `json:"out_of_order"`
	Gaps              int `json:"gaps"`
	Divergent         int `json:"divergent"`
	OutsideWindow     int `json:"outside_window"` // a group message shown to, or ACKed from, a user outside their membership windows
	ReceiptViolations int `json:"receipt_violations"`
	ReceiptPushesBack int `json:"receipt_pushes_back"` // receipt pushes older than one the device was already told (live pushes are unordered)
	System            int `json:"system"`              // server-made messages shown (group events): no client id

	// ACK; send → display while running; send → display in the final sync (fresh devices excluded)
	Ack        Latency    `json:"ack"`
	Live       Latency    `json:"live"`
	Synced     Latency    `json:"synced"`
	Recoveries []Recovery `json:"recoveries"`

	// Examples holds a few concrete cases per violated figure.
	Examples []string `json:"examples"`
}

// Latency summarizes durations.
type Latency struct {
	N    int           `json:"n"`
	P50  time.Duration `json:"p50_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p999_ns"`
	Max  time.Duration `json:"max_ns"`
}

func summarize(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
	return Latency{N: len(ds), P50: q(0.50), P99: q(0.99), P999: q(0.999), Max: ds[len(ds)-1]}
}

// OK reports whether every figure that must be zero is zero.
func (rep *Report) OK() bool { return len(rep.Violations()) == 0 }

// Violations names the figures that must be zero and are not.
func (rep *Report) Violations() []string {
	var v []string
	for _, f := range []struct {
		name string
		n    int
	}{
		{"lost", rep.Lost}, {"unexpected", rep.Unexpected}, {"duplicated stored", rep.DupStored},
		{"duplicated shown", rep.DupShown}, {"out of order", rep.OutOfOrder}, {"gaps", rep.Gaps},
		{"divergent", rep.Divergent}, {"outside window", rep.OutsideWindow}, {"receipt violations", rep.ReceiptViolations},
	} {
		if f.n != 0 {
			v = append(v, fmt.Sprintf("%s=%d", f.name, f.n))
		}
	}
	return v
}

type convSeq struct {
	conv string
	seq  uint64
}

// Check counts the figures of the run recorded so far.
func (r *Recorder) Check() *Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := &Report{Recoveries: append([]Recovery(nil), r.faults...)}
	perKind := map[string]int{}
	example := func(format string, a ...any) {
		kind, _, _ := strings.Cut(format, ":")
		if perKind[kind]++; perKind[kind] <= 3 {
			rep.Examples = append(rep.Examples, fmt.Sprintf(format, a...))
		}
	}

	seen := r.seenLocked()
	wins, holds := r.windowsLocked(), r.holdsLocked(nil)
	// Where each client id was stored, from ACKs and from every view.
	stored := map[string]map[convSeq]bool{}
	at := func(id string, cs convSeq) {
		m := stored[id]
		if m == nil {
			m = map[convSeq]bool{}
			stored[id] = m
		}
		m[cs] = true
	}
	// What each (conv, seq) holds, and who sent it.
	content := map[convSeq]Message{}
	owner := map[convSeq]*send{} // what was sent there (by whom)
	var ackLat []time.Duration
	for _, s := range r.order {
		rep.Attempted++
		if s.outcome != OK {
			continue
		}
		rep.Acknowledged++
		if s.conv == "\x00dup" {
			rep.DupStored++
			example("duplicated stored: %s ACKed with two different seqs", s.id)
			continue
		}
		ackLat = append(ackLat, s.ackTook)
		if s.unsequenced && s.conv == "" {
			continue // ACKed without a seq and shown nowhere: lost, counted below
		}
		at(s.id, convSeq{s.conv, s.seq})
		owner[convSeq{s.conv, s.seq}] = s
		if d := r.devices[s.device]; d != nil {
			if in, windowed := wins.in(s.conv, d.user, s.seq); windowed && !in {
				rep.OutsideWindow++
				example("outside window: %s (%s) was ACKed as %s/%d, outside its user's membership windows", s.id, s.device, s.conv, s.seq)
			}
		}
	}
	rep.Ack = summarize(ackLat)

	names := make([]string, 0, len(r.devices))
	for n := range r.devices {
		names = append(names, n)
	}
	sort.Strings(names)
	var live, synced []time.Duration
	for _, name := range names {
		d := r.devices[name]
		last := map[string]uint64{}
		ids := map[string]bool{}
		pos := map[convSeq]bool{}
		for _, m := range d.view {
			cs := convSeq{m.Conv, m.Seq}
			s := r.sends[m.ClientMsgID]
			system := m.ClientMsgID == ""
			if system {
				// A server-made event (group created, member joined): it
				// takes a seq, so it counts for order, gaps and
				// duplicates, but nobody sent it.
				if d.fresh {
					rep.System++
				}
			} else if s == nil {
				rep.Unexpected++
				example("unexpected: %s shows %s/%d (client id %q) that nobody sent", name, m.Conv, m.Seq, m.ClientMsgID)
			} else {
				owner[cs] = s
				// A fresh device's sync from zero says how old the
				// history is, not how fast delivery was.
				if s.outcome == OK && s.conv == m.Conv && s.seq == m.Seq && !d.fresh {
					lat := m.at.Sub(s.invoked)
					if m.phase == Live {
						live = append(live, lat)
					} else {
						synced = append(synced, lat)
					}
				}
			}
			if !system {
				at(m.ClientMsgID, cs)
			}
			if in, windowed := wins.in(m.Conv, d.user, m.Seq); windowed && !in {
				rep.OutsideWindow++
				example("outside window: %s shows %s/%d (%q), outside %s's membership windows", name, m.Conv, m.Seq, m.ClientMsgID, d.user)
			}
			if (!system && ids[m.ClientMsgID]) || pos[cs] {
				rep.DupShown++
				example("duplicated shown: %s shows %s/%d (%s) twice", name, m.Conv, m.Seq, m.ClientMsgID)
			}
			ids[m.ClientMsgID], pos[cs] = true, true
			if m.Seq <= last[m.Conv] {
				rep.OutOfOrder++
				example("out of order: %s shows %s/%d after %d", name, m.Conv, m.Seq, last[m.Conv])
			} else {
				last[m.Conv] = m.Seq
			}
			if c, ok := content[cs]; ok {
				if c != m.Message {
					rep.Divergent++
					example("divergent: %s/%d is %q from %s on one device, %q from %s on %s", m.Conv, m.Seq, c.ClientMsgID, c.Sender, m.ClientMsgID, m.Sender, name)
				}
			} else {
				content[cs] = m.Message
			}
		}
		// Holes below the highest seq shown, except this device's own
		// sends (never echoed to it).
		for conv, max := range last {
			for s := uint64(1); s < max; s++ {
				cs := convSeq{conv, s}
				if pos[cs] || (owner[cs] != nil && owner[cs].sentBy(name)) {
					continue
				}
				if in, windowed := wins.in(conv, d.user, s); windowed && !in {
					continue // not this user's to see
				}
				rep.Gaps++
				example("gap: %s has no %s/%d below %d", name, conv, s, max)
			}
		}
		for k, seqs := range d.receipts {
			for i := 1; i < len(seqs); i++ {
				if seqs[i] < slices.Max(seqs[:i]) {
					rep.ReceiptPushesBack++
					example("receipt push (report only): %s was told cursor %s is %d after %d", name, k, seqs[i], slices.Max(seqs[:i]))
				}
			}
		}
	}
	rep.Live, rep.Synced = summarize(live), summarize(synced)

	for id, where := range stored {
		if len(where) > 1 {
			rep.DupStored++
			example("duplicated stored: %s at %v", id, where)
		}
	}
	// An ACK and the views must agree on what a (conv, seq) holds.
	for _, s := range r.order {
		if s.outcome != OK || s.conv == "\x00dup" || s.unsequenced {
			continue // an unsequenced ACK's place comes from the views
		}
		if c, ok := content[convSeq{s.conv, s.seq}]; ok && c.ClientMsgID != s.id {
			rep.Divergent++
			example("divergent: %s was ACKed as %s/%d, which devices show as %s", s.id, s.conv, s.seq, c.ClientMsgID)
		}
	}

	// Sends of one device, one at a time: a later one must get a higher seq.
	lastByDev := map[string]*send{}
	for _, s := range r.order {
		if s.outcome != OK || s.conv == "\x00dup" || (s.unsequenced && s.conv == "") {
			continue
		}
		k := s.device + "\x00" + s.conv
		if p := lastByDev[k]; p != nil && p.acked.Before(s.invoked) && s.seq <= p.seq {
			rep.OutOfOrder++
			example("out of order: %s sent %s (seq %d) after %s (seq %d)", s.device, s.id, s.seq, p.id, p.seq)
		}
		lastByDev[k] = s
	}

	for _, s := range r.order {
		seenAnywhere := false
		for _, m := range seen {
			if m[s.id] {
				seenAnywhere = true
				break
			}
		}
		switch {
		case s.outcome == OK:
			missing := 0
			for _, d := range r.expectedLocked(s, wins, holds) {
				if !seen[d.name][s.id] {
					missing++
					if missing == 1 {
						example("lost: %s (%s/%d, sent by %s) missing on %s", s.id, s.conv, s.seq, s.device, d.name)
					}
				}
			}
			if missing > 0 {
				rep.Lost++
				rep.LostPairs += missing
			}
		case seenAnywhere:
			rep.Recovered++
		case s.outcome == Failed:
			rep.Failed++
		default:
			rep.Unknown++
		}
	}

	for _, c := range r.cursors {
		bad := c.Read > c.Delivered || c.Delivered > c.Last
		if c.HasPeer {
			bad = bad || c.PeerRead > c.PeerDelivered || c.PeerDelivered > c.Last
		}
		if bad {
			rep.ReceiptViolations++
			example("receipt: %s in %s: last %d delivered %d read %d, peer delivered %d read %d", c.User, c.Conv, c.Last, c.Delivered, c.Read, c.PeerDelivered, c.PeerRead)
		}
	}
	return rep
}

// Print writes the report as the table of reliability-and-security.md.
func (rep *Report) Print(w io.Writer) {
	zero := func(n int) string {
		if n == 0 {
			return "0 ✓"
		}
		return fmt.Sprintf("%d ✗ (must be 0)", n)
	}
	lat := func(l Latency) string {
		if l.N == 0 {
			return "-"
		}
		return fmt.Sprintf("p50 %v  p99 %v  p99.9 %v  max %v  (n=%d)", round(l.P50), round(l.P99), round(l.P999), round(l.Max), l.N)
	}
	var rec []string
	for _, f := range rep.Recoveries {
		s := fmt.Sprintf("%s %v", f.Fault, round(f.Took))
		if !f.OK {
			s += " (NOT caught up)"
		}
		rec = append(rec, s)
	}
	rows := [][2]string{
		{"attempted / acknowledged", fmt.Sprintf("%d / %d", rep.Attempted, rep.Acknowledged)},
		{"failed (refused, not stored)", fmt.Sprint(rep.Failed)},
		{"lost", zero(rep.Lost) + lostPairs(rep)},
		{"unknown / recovered", fmt.Sprintf("%d / %d", rep.Unknown, rep.Recovered)},
		{"unexpected", zero(rep.Unexpected)},
		{"duplicated stored / shown", zero(rep.DupStored) + " / " + zero(rep.DupShown)},
		{"out of order", zero(rep.OutOfOrder)},
		{"gaps", zero(rep.Gaps)},
		{"divergent", zero(rep.Divergent)},
		{"outside membership windows", zero(rep.OutsideWindow)},
		{"receipt violations (stored cursors)", zero(rep.ReceiptViolations)},
		{"receipt pushes older than one already shown", fmt.Sprint(rep.ReceiptPushesBack)},
		{"server-made messages (group events) per fresh device set", fmt.Sprint(rep.System)},
		{"latency: ACK", lat(rep.Ack)},
		{"latency: send → shown, live", lat(rep.Live)},
		{"latency: send → shown, final sync", lat(rep.Synced)},
		{"recovery", strings.Join(rec, "; ")},
	}
	fmt.Fprintln(w, "| figure | value |")
	fmt.Fprintln(w, "|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s |\n", r[0], r[1])
	}
	for _, e := range rep.Examples {
		fmt.Fprintln(w, "  e.g.", e)
	}
}

func lostPairs(rep *Report) string {
	if rep.Lost == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d message-device pairs)", rep.LostPairs)
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}
