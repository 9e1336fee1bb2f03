package gateway

import (
	"maps"

	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// Deliveries to an MQTT connection. Messages go out as PUBLISH on
// magpie/inbox with the message in the JSON protocol's form as payload:
// transient ones (broadcasts, push notifications) always at QoS 0, stored
// ones at the subscription's QoS. A QoS 1 PUBLISH holds a packet id until
// the client's PUBACK, which moves the user's delivered cursor (and, with
// a stored session, the device's own position: see below); at most
// the client's Receive Maximum are unacknowledged, the rest wait in
// mqttTransport.waiting, and more than the send queue's worth waiting is a
// slow consumer.
//
// A stored message is published once per connection and in seq order: a
// seq not above the conversation's last one published is dropped (a live
// push that a catch-up already sent), and a seq beyond the next one (a
// live push overtook a message this connection never got) starts a
// catch-up of that conversation. A catch-up is a sync from the cursors;
// live messages that arrive meanwhile are held and published after it.
//
// A connection with a stored session (ConnRef.session_expiry) syncs from
// the device's own position, which logic keeps and its PUBACKs move: on a
// persistent session's connect the catch-up starts with no cursors and
// pages through every conversation, the cursors then being what this
// connection got so far.

// catchUp is a running catch-up sync.
type catchUp struct {
	cursors  map[string]uint64 // what the catch-up got so far, sent with each page
	only     map[string]bool   // a gap's conversations without a stored session; nil: all
	gap      bool              // started by a gap, not by connect
	from     map[string]uint64 // a gap's: where it started
	deferred bool              // the next sync waits for waiting to drain
}

// catchUpBatch is the waiting PUBLISHes above which the next sync of a
// catch-up waits for the client's PUBACKs.
func (t *mqttTransport) catchUpBatch() int { return max(1, t.s.g.cfg.SendQueue/4) }

// deliver publishes one message; env is its encoded Envelope (live
// pushes, nil from a catch-up), held back while a catch-up runs.
func (t *mqttTransport) deliver(w *mqttWriter, m *magpiepb.Message, env []byte, fromCatchUp bool) {
	t.deliverReplay(w, m, env, fromCatchUp, false)
}

func (t *mqttTransport) deliverReplay(w *mqttWriter, m *magpiepb.Message, env []byte, fromCatchUp, replay bool) {
	t.mu.Lock()
	qos := t.subQoS
	if qos < 0 {
		t.mu.Unlock()
		return
	}
	stored := m.Seq > 0 && !m.Transient
	if !stored {
		qos = 0
	}
	var startGap bool
	if stored {
		last, known := t.published[m.ConversationId]
		switch {
		case m.Seq <= last:
			t.mu.Unlock()
			return // sent already
		case !fromCatchUp && t.catchUp != nil:
			t.hold(w, env)
			t.mu.Unlock()
			return
		case !fromCatchUp && !replay && qos == 1 && known && m.Seq > last+1:
			t.hold(w, env)
			startGap = t.startCatchUpLocked(map[string]uint64{m.ConversationId: last}, true)
			t.mu.Unlock()
			if startGap {
				w.later = append(w.later, t.syncNext)
			}
			return
		}
		if t.published == nil {
			t.published = make(map[string]uint64)
		}
		t.published[m.ConversationId] = m.Seq
	}
	payload, err := jsonOut.Marshal(m)
	if err != nil {
		t.mu.Unlock()
		t.s.g.log.Warn("unencodable message for mqtt", "conn", t.s.id, "err", err)
		return
	}
	if qos == 0 {
		t.mu.Unlock()
		w.buf = t.appendPublish(w.buf, 0, 0, payload)
		return
	}
	at := cursor{conv: m.ConversationId, seq: m.Seq}
	if len(t.waiting) > 0 || len(t.inflight) >= t.recvMax {
		if len(t.waiting) >= t.s.g.cfg.SendQueue {
			t.mu.Unlock()
			t.slowConsumer(w)
			return
		}
		t.waiting = append(t.waiting, outPublish{at: at, payload: payload})
		t.mu.Unlock()
		return
	}
	pid := t.takePIDLocked(at)
	t.mu.Unlock()
	w.buf = t.appendPublish(w.buf, 1, pid, payload)
}

// hold keeps a live message for after the catch-up. t.mu is held.
func (t *mqttTransport) hold(w *mqttWriter, env []byte) {
	if env == nil {
		return
	}
	if len(t.held) >= t.s.g.cfg.SendQueue {
		w.later = append(w.later, func() { t.s.kick(wire.CodeSlowConsumer, "too many messages during catch-up") })
		return
	}
	t.held = append(t.held, append([]byte(nil), env...))
}

func (t *mqttTransport) slowConsumer(w *mqttWriter) {
	t.s.g.stats.slowConsumers.Add(1)
	t.kicked(w, wire.CodeSlowConsumer, "too many unacknowledged messages")
	w.closeCode = wire.CodeSlowConsumer
}

// takePIDLocked assigns a free packet id to a QoS 1 PUBLISH. t.mu is held
// and fewer than recvMax (at most 65535) are in flight.
func (t *mqttTransport) takePIDLocked(at cursor) uint16 {
	if t.inflight == nil {
		t.inflight = make(map[uint16]cursor)
	}
	for {
		t.nextPID++
		if t.nextPID == 0 {
			continue
		}
		if _, used := t.inflight[t.nextPID]; !used {
			t.inflight[t.nextPID] = at
			return t.nextPID
		}
	}
}

// appendPublish encodes a PUBLISH on magpie/inbox. One larger than the
// client's Maximum Packet Size is dropped, as MQTT 5 (3.1.2.11.4) says;
// its packet id is then released.
func (t *mqttTransport) appendPublish(buf []byte, qos byte, pid uint16, payload []byte) []byte {
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topicInbox, PacketID: pid, Payload: payload}
	if t.version == 5 {
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = 1, true // UTF-8
		pk.Properties.ContentType = "application/json"
	}
	b := t.encode(pk)
	if t.maxOut > 0 && len(b) > t.maxOut {
		t.s.g.log.Debug("mqtt publish over the client's maximum packet size dropped", "conn", t.s.id, "size", len(b))
		if qos > 0 {
			t.mu.Lock()
			delete(t.inflight, pid)
			t.mu.Unlock()
		}
		return buf
	}
	return append(buf, b...)
}

// acked handles the client's PUBACK: the packet id is free, the waiting
// PUBLISHes may take it (released by the flusher, so that every PUBLISH
// is written in order), and a stored message's seq becomes the delivered
// cursor (a receipt the session forwards).
func (t *mqttTransport) acked(pid uint16) []byte {
	t.mu.Lock()
	at, ok := t.inflight[pid]
	delete(t.inflight, pid)
	release := len(t.waiting) > 0 || (t.catchUp != nil && t.catchUp.deferred)
	t.mu.Unlock()
	if release {
		t.s.send([]byte{frameRelease})
	}
	if !ok || at.seq == 0 {
		return t.request(mqttPending{kind: pendNoop}, pingEnvelope)
	}
	return t.request(mqttPending{kind: pendReceipt}, &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{
		ConversationId: at.conv, Kind: magpiepb.ReceiptKind_RECEIPT_KIND_DELIVERED, Seq: at.seq,
	}})
}

// release publishes the waiting PUBLISHes that fit the client's receive
// maximum now, and resumes a catch-up that waited for them. Flusher only.
func (t *mqttTransport) release(w *mqttWriter) {
	type out struct {
		pid     uint16
		payload []byte
	}
	var ready []out
	t.mu.Lock()
	for len(t.waiting) > 0 && len(t.inflight) < t.recvMax {
		p := t.waiting[0]
		t.waiting[0] = outPublish{}
		t.waiting = t.waiting[1:]
		ready = append(ready, out{t.takePIDLocked(p.at), p.payload})
	}
	if len(t.waiting) == 0 {
		t.waiting = nil
	}
	resume := t.catchUp != nil && t.catchUp.deferred && len(t.waiting) < t.catchUpBatch()/2
	if resume {
		t.catchUp.deferred = false
		w.later = append(w.later, t.syncNext)
	}
	t.mu.Unlock()
	for _, r := range ready {
		w.buf = t.appendPublish(w.buf, 1, r.pid, r.payload)
	}
}

// startCatchUp starts a catch-up from the delivered cursors; it reports
// whether the caller must call syncNext (one is not running already).
func (t *mqttTransport) startCatchUp(cursors map[string]uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.startCatchUpLocked(cursors, false)
}

func (t *mqttTransport) startCatchUpLocked(cursors map[string]uint64, gap bool) bool {
	if t.catchUp != nil {
		return false
	}
	cu := &catchUp{cursors: cursors, gap: gap}
	if t.expiry == 0 {
		// Without a stored session a sync answers after the cursors and
		// from the start elsewhere: only the gap's conversations count.
		cu.only = make(map[string]bool, len(cursors))
		for c := range cursors {
			cu.only[c] = true
		}
	}
	if gap {
		cu.from = maps.Clone(cursors)
	}
	t.catchUp = cu
	return true
}

// syncNext asks logic for the next page of the catch-up. Its answer comes
// to synced, not through the session's queue.
func (t *mqttTransport) syncNext() {
	t.mu.Lock()
	cu := t.catchUp
	if cu == nil {
		t.mu.Unlock()
		return
	}
	req := &magpiepb.SyncRequest{} // limit 0: the maximum page
	for c, seq := range cu.cursors {
		req.Cursors = append(req.Cursors, &magpiepb.Cursor{ConversationId: c, Seq: seq})
	}
	t.mu.Unlock()
	env := marshal(&magpiepb.Envelope{Id: 1, Body: &magpiepb.Envelope_Sync{Sync: req}})
	t.s.g.logic.Forward(&clusterpb.Request{Conn: t.s.ref, Envelope: env}, t.synced)
}

// synced takes one sync answer of a catch-up: the messages are queued in
// order (as frameCatchUp frames) and the next page is asked for, or the
// end is queued (frameCatchUpDone).
func (t *mqttTransport) synced(reply []byte, err error) {
	env := new(magpiepb.Envelope)
	if err == nil {
		err = proto.Unmarshal(reply, env)
	}
	res := env.GetSyncResult()
	if err != nil || res == nil {
		if err == nil {
			err = errorOf(env)
		}
		t.s.g.log.Warn("mqtt catch-up failed", "conn", t.s.id, "err", err)
		t.s.kick(wire.CodeUnavailable, "catch-up unavailable")
		return
	}
	t.mu.Lock()
	cu := t.catchUp
	if cu == nil {
		t.mu.Unlock()
		return
	}
	var frames [][]byte
	next := false
	for _, m := range res.Messages {
		last, known := cu.cursors[m.ConversationId]
		cu.cursors[m.ConversationId] = max(last, m.Seq) // progress, wanted or not
		if (cu.only != nil && !cu.only[m.ConversationId]) || (known && m.Seq <= last) {
			continue
		}
		b, err := proto.Marshal(m)
		if err != nil {
			continue
		}
		frames = append(frames, append([]byte{frameCatchUp}, b...))
	}
	switch {
	case !res.More:
	case len(res.Messages) == 0:
		// More with nothing in it makes no progress: logic's answer
		// always holds a message when one is left.
	case len(cu.cursors) >= wire.MaxCursors:
		// The next page's cursors would be refused: what is left comes
		// with the next catch-up (docs/mqtt.md, Limits).
		t.s.g.log.Warn("mqtt catch-up stopped at the cursor limit", "conn", t.s.id, "cursors", len(cu.cursors))
	case len(t.waiting)+len(frames) > t.catchUpBatch():
		cu.deferred = true
	default:
		next = true
	}
	if !next && !cu.deferred {
		frames = append(frames, []byte{frameCatchUpDone})
	}
	t.mu.Unlock()
	for _, f := range frames {
		if !t.s.send(f) {
			return
		}
	}
	if next {
		t.syncNext()
	}
}

func errorOf(env *magpiepb.Envelope) error {
	if e := env.GetError(); e != nil {
		return &wireError{code: wire.Code(e.Code), msg: e.Message}
	}
	return errUndecodable
}

type wireError struct {
	code wire.Code
	msg  string
}

func (e *wireError) Error() string { return e.msg }

// catchUpDone ends the catch-up and publishes the live messages held
// meanwhile (those it did not send already).
func (t *mqttTransport) catchUpDone(w *mqttWriter) {
	t.mu.Lock()
	cu := t.catchUp
	t.catchUp = nil
	held := t.held
	t.held = nil
	if cu != nil && cu.gap {
		for c, seq := range cu.cursors {
			if cu.only != nil && !cu.only[c] {
				continue // skipped, not published
			}
			t.published[c] = max(t.published[c], seq)
		}
	}
	t.mu.Unlock()
	for _, env := range held {
		e := new(magpiepb.Envelope)
		if proto.Unmarshal(env, e) == nil && e.GetMessage() != nil {
			// Held messages go through gap detection like live ones: a
			// push lost while another conversation (or the connect)
			// was being caught up is not otherwise fetched, and the
			// held message published past it made the device skip it.
			// Only a gap that its own catch-up found nothing in (seqs
			// the user may not see, e.g. after leaving) is passed.
			m := e.GetMessage()
			past := false
			if cu != nil && cu.gap {
				from, ok := cu.from[m.ConversationId]
				past = ok && cu.cursors[m.ConversationId] == from
			}
			t.deliverReplay(w, m, env, false, past)
		}
	}
}
