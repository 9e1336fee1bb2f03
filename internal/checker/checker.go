// Package checker is a Jepsen-style checker for Magpie's delivery
// guarantees (docs: reliability-and-security.md, "The checker"). A test
// load records every send as it is invoked and how it ended (ok with a seq,
// failed, or unknown), every message each device displayed, and the
// receipt cursors it saw; after the faults heal and every device has done
// a final sync, Check counts what went wrong.
//
// A Recorder is safe for concurrent use. Check may run while recording
// continues, but it is meant for the end.
package checker

import (
	"encoding/json"
	"sync"
	"time"
)

// Outcome is how a send ended from the sender's point of view.
type Outcome int

const (
	Pending Outcome = iota // invoked, not finished yet
	OK                     // acknowledged with a seq: durably stored
	Failed                 // refused with a definite error: not stored
	Unknown                // timed out or the connection died: stored or not
)

// Phase says how a device came to display a message.
type Phase int

const (
	Live Phase = iota // while the load ran (a push, a gap fill or a reconnect sync)
	Sync              // during the final sync, or on a fresh device syncing from zero
)

// Message is one displayed message, as the device saw it.
type Message struct {
	Conv        string
	Seq         uint64
	ClientMsgID string
	Sender      string // user name
	Text        string
}

type send struct {
	id      string
	device  string   // the first device that sent it
	also    []string // other devices that sent the same id (scenario 10)
	members []string // users of the conversation, sender included
	invoked time.Time
	outcome Outcome
	conv    string
	seq     uint64
	acked   time.Time
	// last is the latest invoke; ackTook runs from the invoke before the
	// first ACK to it. A client id sent again on purpose much later
	// (scenario 10) is not an ACK that took minutes.
	last    time.Time
	ackTook time.Duration
	// unsequenced: ACKed without a seq (an MQTT PUBACK says stored, not
	// where); conv and seq come from the first view that shows the id,
	// kept in seen* until then.
	unsequenced bool
	seenConv    string
	seenSeq     uint64
}

type shown struct {
	Message
	at    time.Time
	phase Phase
}

type device struct {
	name  string
	user  string
	fresh bool
	view  []shown
	ids   map[string]bool // the client ids in view: Missing* polls them
	convs map[string]bool // the conversations in view
	// receipts[conv/user/kind] = the cursors seen, in order
	receipts map[string][]uint64
}

// Cursor is one user's receipt state of a conversation, as the server
// reports it at the end (GET /v1/conversations).
type Cursor struct {
	User, Conv              string
	Last, Delivered, Read   uint64
	PeerDelivered, PeerRead uint64
	HasPeer                 bool
}

// Recorder collects the history of a run.
type Recorder struct {
	mu      sync.Mutex
	sends   map[string]*send
	order   []*send // by invocation
	devices map[string]*device
	users   map[string][]*device
	cursors []Cursor
	faults  []Recovery
	members map[string]map[memberKey]memberEvent // conv → membership events (windows.go)

	hist    *json.Encoder // see Record
	histErr error
}

// Recovery is how long the devices took to catch up after one fault.
type Recovery struct {
	Fault string        `json:"fault"`
	Took  time.Duration `json:"took_ns"`
	OK    bool          `json:"ok"` // false: not caught up before the deadline
}

// New returns an empty Recorder.
func New() *Recorder {
	return &Recorder{sends: map[string]*send{}, devices: map[string]*device{}, users: map[string][]*device{}}
}

// Device declares a device of user. A fresh device joins at the end and
// syncs from zero; it is expected to show every stored message of its
// user's conversations.
func (r *Recorder) Device(name, user string, fresh bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(event{Ev: "device", Device: name, User: user, Fresh: fresh})
	if _, ok := r.devices[name]; ok {
		return
	}
	d := &device{name: name, user: user, fresh: fresh, receipts: map[string][]uint64{}, ids: map[string]bool{}, convs: map[string]bool{}}
	r.devices[name] = d
	r.users[user] = append(r.users[user], d)
}

// Invoke records that device is about to send a message with client id id
// to a conversation whose members (sender included) are members. Invoking
// an id again is a retry; from another device, that device is a sender of
// the same message too (it is then not expected to show it).
func (r *Recorder) Invoke(id, device string, members []string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(event{Ev: "invoke", ID: id, Device: device, Members: members, At: at(t)})
	if s, ok := r.sends[id]; ok {
		// A retry of the same id: one attempt. From another device (the
		// same id through two gateways), that device sent it too: its
		// SDK knows the message as its own and does not show it.
		if device != s.device && !contains(s.also, device) {
			s.also = append(s.also, device)
		}
		if s.outcome != OK {
			s.last = t
		}
		return
	}
	s := &send{id: id, device: device, members: append([]string(nil), members...), invoked: t, last: t}
	r.sends[id] = s
	r.order = append(r.order, s)
}

// Acked records the server's ACK. Several ACKs of one id (a retry) must
// carry the same seq; a different one is a stored duplicate, counted by
// Check.
func (r *Recorder) Acked(id, conv string, seq uint64, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(event{Ev: "ack", ID: id, Conv: conv, Seq: seq, At: at(t)})
	s := r.sends[id]
	if s == nil {
		return
	}
	if s.outcome == OK && (s.conv != conv || s.seq != seq) {
		s.seq = 0 // poisoned: two seqs for one id
		s.conv = "\x00dup"
		return
	}
	if s.outcome == OK {
		return // the same seq again: the first ACK stands
	}
	s.outcome, s.conv, s.seq, s.acked, s.ackTook = OK, conv, seq, t, t.Sub(s.last)
}

// AckedUnsequenced records an ACK that says the message is stored but
// not at which seq (MQTT's PUBACK). The checker takes its conversation and
// seq from the first device that shows it; one that no device shows is
// lost like any acknowledged message.
func (r *Recorder) AckedUnsequenced(id string, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(event{Ev: "ack", ID: id, At: at(t)})
	s := r.sends[id]
	if s == nil || s.outcome == OK {
		return
	}
	s.outcome, s.acked, s.ackTook, s.unsequenced = OK, t, t.Sub(s.last), true
	s.conv, s.seq = s.seenConv, s.seenSeq
}

// OutcomeOf reports how the send of id has ended so far (Pending for an
// id never invoked).
func (r *Recorder) OutcomeOf(id string) Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.sends[id]; s != nil {
		return s.outcome
	}
	return Pending
}

// Ended records a send that ended without an ACK: Failed for a definite
// refusal, Unknown for a timeout or a lost connection.
func (r *Recorder) Ended(id string, o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o == Failed || o == Unknown {
		r.emit(event{Ev: "end", ID: id, Outcome: map[Outcome]string{Failed: "failed", Unknown: "unknown"}[o]})
	}
	if s := r.sends[id]; s != nil && s.outcome != OK {
		s.outcome = o
	}
}

// Shown records that device displayed m (the SDK's OnMessage).
func (r *Recorder) Shown(deviceName string, m Message, phase Phase, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ph := "live"
	if phase == Sync {
		ph = "sync"
	}
	r.emit(event{Ev: "shown", Device: deviceName, Conv: m.Conv, Seq: m.Seq, ClientMsgID: m.ClientMsgID, Sender: m.Sender, Text: m.Text, Phase: ph, At: at(t)})
	if d := r.devices[deviceName]; d != nil {
		d.view = append(d.view, shown{Message: m, at: t, phase: phase})
		d.ids[m.ClientMsgID] = true
		d.convs[m.Conv] = true
	}
	if s := r.sends[m.ClientMsgID]; s != nil && s.seenConv == "" {
		s.seenConv, s.seenSeq = m.Conv, m.Seq
		if s.unsequenced && s.conv == "" {
			s.conv, s.seq = m.Conv, m.Seq
		}
	}
}

// Receipt records a receipt cursor a device was told about: user's
// delivered (read=false) or read cursor of conv moved to seq.
func (r *Recorder) Receipt(deviceName, conv, user string, read bool, seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kind := "delivered"
	if read {
		kind = "read"
	}
	r.emit(event{Ev: "receipt", Device: deviceName, Conv: conv, User: user, Kind: kind, Seq: seq})
	if d := r.devices[deviceName]; d != nil {
		k := conv + "/" + user + "/d"
		if read {
			k = conv + "/" + user + "/r"
		}
		d.receipts[k] = append(d.receipts[k], seq)
	}
}

// Cursors records the server's final receipt cursors.
func (r *Recorder) Cursors(cs ...Cursor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		r.emit(event{Ev: "cursor", User: c.User, Conv: c.Conv, Last: c.Last, Delivered: c.Delivered, Read: c.Read,
			PeerDelivered: c.PeerDelivered, PeerRead: c.PeerRead, HasPeer: c.HasPeer})
	}
	r.cursors = append(r.cursors, cs...)
}

// Recovered records the recovery time after a fault.
func (r *Recorder) Recovered(fault string, took time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.emit(event{Ev: "recovered", Fault: fault, Took: took.String(), OK: ok})
	r.faults = append(r.faults, Recovery{Fault: fault, Took: took, OK: ok})
}

// Missing counts (message, device) pairs where a message acknowledged
// before 'before' is not yet shown on a device that expects it, among the
// devices that are not fresh. A harness polls it until zero to measure
// recovery, and to know the final sync is complete.
func (r *Recorder) Missing(before time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.seenLocked()
	w, holds := r.windowsLocked(), r.holdsLocked(nil)
	n := 0
	for _, s := range r.order {
		if s.outcome != OK || s.acked.After(before) {
			continue
		}
		for _, d := range r.expectedLocked(s, w, holds) {
			if !d.fresh && !seen[d.name][s.id] {
				n++
			}
		}
	}
	return n
}

// MissingByDevice is, per device (fresh ones too), the messages
// acknowledged before 'before' that it should show and does not: MissingOn
// of every device in one pass, for a harness that polls hundreds of
// devices (each MissingOn walks every send).
func (r *Recorder) MissingByDevice(before time.Time) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.seenLocked()
	w, holds := r.windowsLocked(), r.holdsLocked(nil)
	out := map[string]int{}
	for _, s := range r.order {
		if s.outcome != OK || s.acked.After(before) {
			continue
		}
		for _, d := range r.expectedLocked(s, w, holds) {
			if !seen[d.name][s.id] {
				out[d.name]++
			}
		}
	}
	return out
}

// MissingOn counts the acknowledged messages deviceName should show and
// does not.
func (r *Recorder) MissingOn(deviceName string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.devices[deviceName]
	if d == nil {
		return 0
	}
	got := d.ids
	w, holds := r.windowsLocked(), r.holdsLocked(d)
	n := 0
	for _, s := range r.order {
		if s.outcome == OK && !got[s.id] && r.expectsLocked(s, d, w, holds) {
			n++
		}
	}
	return n
}

func (r *Recorder) seenLocked() map[string]map[string]bool {
	seen := make(map[string]map[string]bool, len(r.devices))
	for name, d := range r.devices {
		seen[name] = d.ids // read only
	}
	return seen
}

// sentBy reports whether device sent s (first, or the same id again).
func (s *send) sentBy(device string) bool { return s.device == device || contains(s.also, device) }

// expectedLocked lists the devices that must show s (expectsLocked).
func (r *Recorder) expectedLocked(s *send, w windows, holds map[string]map[string]bool) []*device {
	users := s.members
	if cw, ok := w[s.conv]; ok && s.outcome == OK {
		users = cw.names
	}
	var out []*device
	for _, u := range users {
		for _, d := range r.users[u] {
			if r.expectsLocked(s, d, w, holds) {
				out = append(out, d)
			}
		}
	}
	return out
}

// expectsLocked reports whether d must show s: every device of every
// member except the one that sent it (the SDK does not echo a device's own
// sends back to it). In a conversation with membership windows the members
// are the users whose window holds s's seq (windows.go).
func (r *Recorder) expectsLocked(s *send, d *device, w windows, holds map[string]map[string]bool) bool {
	if s.sentBy(d.name) {
		return false
	}
	if _, ok := w[s.conv]; ok && s.outcome == OK {
		in, _ := w.in(s.conv, d.user, s.seq)
		return in && (w.member(s.conv, d.user) || holds[d.name][s.conv])
	}
	return contains(s.members, d.user)
}

// holdsLocked is, per device (only's, if not nil), the conversations it
// showed a message of or had a send ACKed in: the ones its SDK keeps a
// cursor for and syncs.
func (r *Recorder) holdsLocked(only *device) map[string]map[string]bool {
	out := make(map[string]map[string]bool, len(r.devices))
	add := func(dev, conv string) {
		if only != nil && dev != only.name {
			return
		}
		m := out[dev]
		if m == nil {
			m = map[string]bool{}
			out[dev] = m
		}
		m[conv] = true
	}
	for name, d := range r.devices {
		if only != nil && d != only {
			continue
		}
		for conv := range d.convs {
			add(name, conv)
		}
	}
	for _, s := range r.order {
		if s.outcome == OK {
			add(s.device, s.conv)
			for _, dev := range s.also {
				add(dev, s.conv)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Window summarizes the sends invoked in [from, to): how many, how many
// were acknowledged, and the slowest ACK among them. A harness prints it
// to show that a fault did stall sends (and for how long).
func (r *Recorder) Window(from, to time.Time) (invoked, acked int, slowest time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.order {
		if s.invoked.Before(from) || !s.invoked.Before(to) {
			continue
		}
		invoked++
		if s.outcome == OK {
			acked++
			slowest = max(slowest, s.ackTook)
		}
	}
	return invoked, acked, slowest
}

// AckedFor lists the client ids of the messages acknowledged before
// 'before' that user should see on a new device (one that sent none of
// them and holds no cursors).
func (r *Recorder) AckedFor(user string, before time.Time) map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	w := r.windowsLocked()
	for _, s := range r.order {
		if s.outcome != OK || s.acked.After(before) {
			continue
		}
		// A new device syncs the groups its user is in now, each with
		// every window (windows.go).
		if in, windowed := w.in(s.conv, user, s.seq); (in && w.member(s.conv, user)) || (!windowed && contains(s.members, user)) {
			out[s.id] = true
		}
	}
	return out
}

// LiveLatency is the send → shown latency of the messages invoked in
// [from, to) and shown live, except those skip names: how the rest of the
// traffic fared while something happened.
func (r *Recorder) LiveLatency(from, to time.Time, skip func(id string) bool) Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ds []time.Duration
	for _, d := range r.devices {
		for _, m := range d.view {
			s := r.sends[m.ClientMsgID]
			if s == nil || m.phase != Live || s.invoked.Before(from) || !s.invoked.Before(to) || (skip != nil && skip(s.id)) {
				continue
			}
			ds = append(ds, m.at.Sub(s.invoked))
		}
	}
	return summarize(ds)
}

// AckLatency is the invoke → ACK latency of the sends invoked in
// [from, to) and acknowledged.
func (r *Recorder) AckLatency(from, to time.Time) Latency {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ds []time.Duration
	for _, s := range r.order {
		if s.outcome == OK && !s.invoked.Before(from) && s.invoked.Before(to) {
			ds = append(ds, s.ackTook)
		}
	}
	return summarize(ds)
}
