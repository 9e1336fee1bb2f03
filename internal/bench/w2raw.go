package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// The raw driver (--driver raw) drives W2's pairs without the SDK, so that
// the generator is not what limits a run on a machine it shares with the
// server. Each user logs in over HTTP and holds one raw connection
// (rawconn.go). A sender encodes its send frame's tail once per step and
// patches only the request id, the client_msg_id's counter, the phase and
// the intended send time into it; its reader decodes only an ACK's seq,
// conversation and client_msg_id. A receiver decodes only a message's seq
// and text. Both report their delivered cursor like the SDK does (at most
// one receipt in flight per conversation, at least receiptEvery apart),
// both ping at the server's heartbeat, and rate_limited answers are
// retried with the SDK's backoff, so the server does the same work per
// message as with the SDK driver. What differs: no gap fills, no periodic
// resync, no reconnects (a dropped connection ends the run), and the
// receiver sees the server's live stream as it is (the SDK reorders it).

// rawPair is one pair's raw connections and cursors; the cursors are
// guarded by pair.mu.
type rawPair struct {
	idx              int
	sender, receiver *rawPeer
	ackedSeqs        bitset // seqs ACKed to the sender: its own delivered cursor
	sCursor, rCursor uint64 // highest seq up to which every seq is ACKed / delivered
}

// rawPeer is one authenticated connection. Its reader goroutine reads;
// every write holds wmu, which also guards the fields after it.
type rawPeer struct {
	name string
	rc   *rawConn
	hb   time.Duration
	rb   bytes.Buffer // WebSocket reads

	wmu      sync.Mutex
	buf      []byte // the frame being written
	nextID   uint64
	conv     string              // this side's conversation id, once known
	pending  map[uint64]*rawSend // sender: sends awaiting their answer, by request id
	tmpl     sendTemplate
	nextCmid uint64
	rcptID   uint64 // request id of the receipt in flight; 0: none
	rcptSeq  uint64 // its seq
	rcptDone uint64 // the cursor the server accepted
	rcptNext time.Time
	lastPing time.Time
	histID   uint64
	replies  chan []byte // answers to histID
}

// rawSend is one message of a sender until its ACK (resends after
// rate_limited keep it).
type rawSend struct {
	st       *stepState
	step     int
	measured bool
	closed   bool  // closed loop: its answer sends the next
	intended int64 // Unix ns
	cmid     uint64
	attempt  int
}

// sendTemplate is a step's send frame after the request id: envelope field
// 12 (Send{to_user, client_msg_id, text}), and where to patch it.
type sendTemplate struct {
	step               int // +1; 0: none built
	tail               []byte
	cmidNum, phase, at int // offsets in tail
}

const (
	rawCmidPrefix = "raw"
	rawCmidDigits = 29 // 32 bytes in all, as long as the SDK's hex ids
	rawStampWidth = 19 // Unix ns, 2001–2286
	receiptEvery  = 100 * time.Millisecond
	rawTick       = 10 * time.Millisecond
)

// rawDriver implements w2Driver.
type rawDriver struct {
	b       *w2
	closing atomic.Bool
	closed  atomic.Pointer[closedRun]
	readers sync.WaitGroup
	stop    context.CancelFunc
	ticker  sync.WaitGroup
}

// closedRun is the closed-loop step in progress.
type closedRun struct {
	ctx         context.Context
	st          *stepState
	step        int
	measureFrom time.Time
	end         time.Time
}

func (d *rawDriver) failRun(err error) {
	if d.closing.Load() {
		return
	}
	d.b.c.logf("w2: %s", strings.TrimPrefix(err.Error(), "bench w2: "))
	if d.b.fail != nil {
		d.b.fail(err)
	}
}

func (d *rawDriver) connect(ctx context.Context) error {
	b := d.b
	c := b.c
	names := make([]string, 0, 2*len(b.pairs))
	for _, p := range b.pairs {
		names = append(names, p.from, p.to)
	}
	c.logf("w2: logging in %d users over HTTP (raw driver)", len(names))
	hc := c.httpClient(30*time.Second, 4)
	defer hc.CloseIdleConnections()
	logins, err := loginUsers(ctx, hc, c.Server, names, "bench", 4)
	if err != nil {
		return fmt.Errorf("bench w2: login: %w", err)
	}
	for i, p := range b.pairs {
		p.raw = &rawPair{idx: i}
	}
	c.logf("w2: opening %d raw %s connections", len(names), c.Transport)
	err = forEach(ctx, len(names), 8, func(ctx context.Context, i int) error {
		rc, err := dialRawSize(ctx, c.Transport, logins[i], nil, c.TLS, 16<<10)
		if err != nil {
			return fmt.Errorf("bench w2: dial for %s: %w", names[i], err)
		}
		hb, err := rc.authenticate(logins[i].Token)
		if err != nil {
			rc.close()
			return fmt.Errorf("bench w2: auth of %s: %w", names[i], err)
		}
		// authenticate's write deadline must not outlive it.
		if rc.ws != nil {
			rc.ws.SetWriteDeadline(time.Time{})
		} else {
			rc.tcp.SetWriteDeadline(time.Time{})
		}
		if hb <= 0 {
			hb = 30 * time.Second
		}
		peer := &rawPeer{name: names[i], rc: rc, hb: hb, lastPing: time.Now(), replies: make(chan []byte, 1)}
		p := b.pairs[i/2]
		if i%2 == 0 {
			peer.pending = map[uint64]*rawSend{}
			p.raw.sender = peer
		} else {
			p.raw.receiver = peer
		}
		d.readers.Add(1)
		go d.readLoop(p, peer, i%2 == 0)
		return nil
	})
	if err != nil {
		return err
	}
	tctx, stop := context.WithCancel(context.Background())
	d.stop = stop
	d.ticker.Go(func() { d.tickLoop(tctx) })
	return nil
}

func (d *rawDriver) close() {
	d.closing.Store(true)
	if d.stop != nil {
		d.stop()
		d.ticker.Wait()
	}
	for _, p := range d.b.pairs {
		if p == nil || p.raw == nil {
			continue
		}
		for _, peer := range []*rawPeer{p.raw.sender, p.raw.receiver} {
			if peer != nil {
				peer.rc.close()
			}
		}
	}
	d.readers.Wait()
}

// buildTemplate encodes the send frame's tail for step: the same fields in
// the same order as proto.Marshal of the SDK's envelope, with the same
// text as the SDK driver's (b.text) and a client_msg_id as long as the
// SDK's. Called with wmu held.
func (peer *rawPeer) buildTemplate(b *w2, to string, step int) {
	prefix := fmt.Sprintf("b%d|", step)
	text := b.text(step, true, 1_000_000_000_000_000_000) // 19 digits, patched per message
	cmid := rawCmidPrefix + string(bytes.Repeat([]byte{'0'}, rawCmidDigits))
	var s []byte
	s = protowire.AppendTag(s, 1, protowire.BytesType)
	s = protowire.AppendString(s, to)
	s = protowire.AppendTag(s, 3, protowire.BytesType)
	s = protowire.AppendVarint(s, uint64(len(cmid)))
	cmidOff := len(s)
	s = append(s, cmid...)
	s = protowire.AppendTag(s, 4, protowire.BytesType)
	s = protowire.AppendVarint(s, uint64(len(text)))
	textOff := len(s)
	s = append(s, text...)
	tail := protowire.AppendTag(nil, 12, protowire.BytesType)
	tail = protowire.AppendVarint(tail, uint64(len(s)))
	base := len(tail)
	tail = append(tail, s...)
	peer.tmpl = sendTemplate{
		step:    step + 1,
		tail:    tail,
		cmidNum: base + cmidOff + len(rawCmidPrefix),
		phase:   base + textOff + len(prefix),
		at:      base + textOff + len(prefix) + 2,
	}
}

// putDigits writes v in decimal into dst, zero-padded to len(dst).
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = byte('0' + v%10)
		v /= 10
	}
}

// readDigits is putDigits' inverse; ok false if dst holds a non-digit.
func readDigits(src []byte) (v uint64, ok bool) {
	for _, ch := range src {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		v = v*10 + uint64(ch-'0')
	}
	return v, true
}

// sendLocked writes rs with a new request id. Called with wmu held.
func (peer *rawPeer) sendLocked(b *w2, to string, rs *rawSend) error {
	peer.nextID++
	id := peer.nextID
	buf := peer.encodeSendLocked(b, to, rs, id)
	peer.pending[id] = rs
	if err := peer.writeLocked(buf); err != nil {
		delete(peer.pending, id)
		return err
	}
	return nil
}

// encodeSendLocked patches rs into the step's template (building it if
// needed) and returns the frame in peer.buf.
func (peer *rawPeer) encodeSendLocked(b *w2, to string, rs *rawSend, id uint64) []byte {
	if peer.tmpl.step != rs.step+1 {
		peer.buildTemplate(b, to, rs.step)
	}
	if rs.cmid == 0 {
		peer.nextCmid++
		rs.cmid = peer.nextCmid
	}
	buf := peer.buf[:0]
	tcp := peer.rc.ws == nil
	if tcp {
		buf = append(buf, 0, 0, 0, 0)
	}
	buf = protowire.AppendTag(buf, 1, protowire.VarintType)
	buf = protowire.AppendVarint(buf, id)
	t := len(buf)
	buf = append(buf, peer.tmpl.tail...)
	putDigits(buf[t+peer.tmpl.cmidNum:t+peer.tmpl.cmidNum+rawCmidDigits], rs.cmid)
	ph := byte('w')
	if rs.measured {
		ph = 'm'
	}
	buf[t+peer.tmpl.phase] = ph
	putDigits(buf[t+peer.tmpl.at:t+peer.tmpl.at+rawStampWidth], uint64(rs.intended))
	if tcp {
		binary.BigEndian.PutUint32(buf, uint32(len(buf)-wire.HeaderSize))
	}
	peer.buf = buf
	return buf
}

// writeLocked writes one frame (TCP: with its header; WebSocket: the
// envelope), as the SDK does: one write per frame.
func (peer *rawPeer) writeLocked(frame []byte) error {
	deadline := time.Now().Add(10 * time.Second)
	if ws := peer.rc.ws; ws != nil {
		ws.SetWriteDeadline(deadline)
		return ws.WriteMessage(websocket.BinaryMessage, frame)
	}
	peer.rc.tcp.SetWriteDeadline(deadline)
	_, err := peer.rc.tcp.Write(frame)
	return err
}

// writeEnvLocked encodes and writes env with a new request id, returned.
func (peer *rawPeer) writeEnvLocked(env *magpiepb.Envelope) (uint64, error) {
	peer.nextID++
	env.Id = peer.nextID
	b, err := proto.Marshal(env)
	if err != nil {
		return 0, err
	}
	if peer.rc.ws == nil {
		b = wire.AppendFrame(nil, b)
	}
	return env.Id, peer.writeLocked(b)
}

// startSend sends a new message for p. A write error ends the run.
func (d *rawDriver) startSend(p *pair, rs *rawSend) {
	rs.st.sent.Add(1)
	rs.st.outstanding.Add(1)
	peer := p.raw.sender
	peer.wmu.Lock()
	err := peer.sendLocked(d.b, p.to, rs)
	peer.wmu.Unlock()
	if err != nil {
		d.finish(rs, fmt.Errorf("write: %w", err))
		d.failRun(fmt.Errorf("bench w2: raw connection of %s: write: %v (the raw driver does not reconnect)", peer.name, err))
	}
}

// finish books a send that failed for good.
func (d *rawDriver) finish(rs *rawSend, err error) {
	rs.st.failed.Add(1)
	rs.st.noteErr(err)
	rs.st.outstanding.Add(-1)
}

func (d *rawDriver) sendOpen(_ context.Context, st *stepState, p *pair, step int, measured bool, intended time.Time) {
	d.startSend(p, &rawSend{st: st, step: step, measured: measured, intended: intended.UnixNano()})
}

func (d *rawDriver) closedLoop(ctx context.Context, drivers *sync.WaitGroup, st *stepState, step, inflight int, measureFrom, end time.Time) {
	d.closed.Store(&closedRun{ctx: ctx, st: st, step: step, measureFrom: measureFrom, end: end})
	for _, p := range d.b.pairs {
		for range inflight {
			now := time.Now()
			d.startSend(p, &rawSend{st: st, step: step, closed: true, measured: !now.Before(measureFrom), intended: now.UnixNano()})
		}
	}
	// The readers send the rest: one new send per answer, until end.
	drivers.Go(func() { sleepUntil(ctx, end) })
}

// next sends the closed loop's next message after rs was answered.
func (d *rawDriver) next(p *pair, rs *rawSend) {
	cr := d.closed.Load()
	if !rs.closed || cr == nil || cr.step != rs.step || cr.ctx.Err() != nil {
		return
	}
	now := time.Now()
	if !now.Before(cr.end) {
		return
	}
	d.startSend(p, &rawSend{st: cr.st, step: cr.step, closed: true, measured: !now.Before(cr.measureFrom), intended: now.UnixNano()})
}

// waitSends waits for the step's answers, then abandons what is left, as
// the SDK driver's sends end in context deadline exceeded.
func (d *rawDriver) waitSends(st *stepState, _ int, deadline time.Time) {
	for st.outstanding.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range d.b.pairs {
		peer := p.raw.sender
		var gone []*rawSend
		peer.wmu.Lock()
		for id, rs := range peer.pending {
			if rs.st == st {
				delete(peer.pending, id)
				gone = append(gone, rs)
			}
		}
		peer.wmu.Unlock()
		for _, rs := range gone {
			d.finish(rs, errors.New("no answer by the settle deadline"))
		}
	}
}

// readLoop reads one connection until it ends; an end before close ends
// the run.
func (d *rawDriver) readLoop(p *pair, peer *rawPeer, isSender bool) {
	defer d.readers.Done()
	haveConv := false
	for {
		frame, err := peer.readFrame()
		if err != nil {
			d.failRun(fmt.Errorf("bench w2: raw connection of %s dropped: %v (the raw driver does not reconnect)", peer.name, errText(err)))
			return
		}
		id, body, val, ok := parseEnvelope(frame)
		if !ok {
			d.failRun(fmt.Errorf("bench w2: undecodable frame on %s's connection", peer.name))
			return
		}
		switch body {
		case 13: // send_ack
			if isSender {
				d.onAck(p, peer, id, val)
			}
		case 14: // message
			if isSender {
				continue
			}
			now := time.Now().UnixNano()
			conv, seq, text, ok := parseMessageBody(val)
			if !ok || seq == 0 {
				continue
			}
			if !haveConv {
				peer.wmu.Lock()
				peer.conv = string(conv)
				peer.wmu.Unlock()
				haveConv = true
			}
			if d.b.tamper != nil && d.b.tamper(p.raw.idx, seq, false) {
				continue
			}
			step, measured, intended, tok := parseText(text)
			d.b.delivered(p, seq, now, step, measured, intended, tok)
		case 22: // error
			code, msg, retryMS := parseError(val)
			if id == 0 {
				d.failRun(fmt.Errorf("bench w2: %s's connection: error %d (%s): %s", peer.name, code, wire.Code(code), msg))
				return
			}
			d.onError(p, peer, id, frame, wire.Code(code), msg, retryMS)
		case 26: // ok: a receipt's answer
			peer.wmu.Lock()
			if id == peer.rcptID {
				peer.rcptDone = max(peer.rcptDone, peer.rcptSeq)
				peer.rcptID, peer.rcptNext = 0, time.Now().Add(receiptEvery)
			}
			peer.wmu.Unlock()
		case 19: // history_result
			peer.wmu.Lock()
			mine := id == peer.histID
			peer.wmu.Unlock()
			if mine {
				select {
				case peer.replies <- bytes.Clone(frame):
				default:
				}
			}
		case 23: // kick
			env := new(magpiepb.Envelope)
			_ = proto.Unmarshal(frame, env)
			k := env.GetKick()
			d.failRun(fmt.Errorf("bench w2: %s kicked: code %d (%s): %s", peer.name, k.GetCode(), wire.Code(k.GetCode()), k.GetReason()))
			return
		}
	}
}

func (peer *rawPeer) readFrame() ([]byte, error) {
	ws := peer.rc.ws
	if ws == nil {
		return peer.rc.r.ReadFrame()
	}
	mt, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	if mt != websocket.BinaryMessage {
		return nil, errors.New("unexpected text frame")
	}
	peer.rb.Reset()
	if _, err := peer.rb.ReadFrom(r); err != nil {
		return nil, err
	}
	return peer.rb.Bytes(), nil
}

// onAck books a send_ack and, in the closed loop, sends the next message.
func (d *rawDriver) onAck(p *pair, peer *rawPeer, id uint64, val []byte) {
	now := time.Now().UnixNano()
	conv, seq, cmid, ok := parseSendAck(val)
	peer.wmu.Lock()
	rs := peer.pending[id]
	delete(peer.pending, id)
	if peer.conv == "" && ok {
		peer.conv = string(conv)
	}
	peer.wmu.Unlock()
	if rs == nil {
		return // abandoned at a settle deadline
	}
	st := rs.st
	if got, dok := readCmid(cmid); !ok || seq == 0 || !dok || got != rs.cmid {
		d.finish(rs, fmt.Errorf("send_ack does not match its request (seq %d, client_msg_id %q)", seq, cmid))
		d.next(p, rs)
		return
	}
	st.acked.Add(1)
	d.b.ackedTotal.Add(1)
	p.mu.Lock()
	p.acked = append(p.acked, seq)
	if rs.measured {
		p.ackHist.Record(now - rs.intended)
	}
	p.raw.ackedSeqs.set(seq)
	p.mu.Unlock()
	st.outstanding.Add(-1)
	d.next(p, rs)
}

func readCmid(cmid []byte) (uint64, bool) {
	if len(cmid) != len(rawCmidPrefix)+rawCmidDigits || string(cmid[:len(rawCmidPrefix)]) != rawCmidPrefix {
		return 0, false
	}
	return readDigits(cmid[len(rawCmidPrefix):])
}

// onError handles an error answer: a send's (retried like the SDK does
// for a Retry code), a receipt's or a history request's.
func (d *rawDriver) onError(p *pair, peer *rawPeer, id uint64, frame []byte, code wire.Code, msg string, retryMS uint32) {
	peer.wmu.Lock()
	if id == peer.rcptID {
		// The SDK logs it and reports again with the next delivery.
		peer.rcptID, peer.rcptNext = 0, time.Now().Add(receiptEvery)
		peer.wmu.Unlock()
		return
	}
	if id == peer.histID {
		peer.wmu.Unlock()
		select {
		case peer.replies <- bytes.Clone(frame):
		default:
		}
		return
	}
	rs := peer.pending[id]
	if rs == nil {
		peer.wmu.Unlock()
		return
	}
	if code.Action() != wire.Retry {
		delete(peer.pending, id)
		peer.wmu.Unlock()
		d.finish(rs, fmt.Errorf("code %d (%s): %s", code, code, msg))
		d.next(p, rs)
		return
	}
	// Kept under its old id while the timer runs, so that a settle
	// deadline can abandon it.
	delay := max(time.Duration(retryMS)*time.Millisecond, sdkBackoff(rs.attempt))
	rs.attempt++
	peer.wmu.Unlock()
	time.AfterFunc(delay, func() {
		peer.wmu.Lock()
		if peer.pending[id] != rs {
			peer.wmu.Unlock()
			return
		}
		delete(peer.pending, id)
		err := peer.sendLocked(d.b, p.to, rs)
		peer.wmu.Unlock()
		if err != nil {
			d.finish(rs, fmt.Errorf("write: %w", err))
			d.failRun(fmt.Errorf("bench w2: raw connection of %s: write: %v (the raw driver does not reconnect)", peer.name, err))
		}
	})
}

// sdkBackoff is the SDK's retry delay (client/dispatch.go, defaults
// 250 ms … 30 s, jittered).
func sdkBackoff(attempt int) time.Duration {
	const lo, hi = 250 * time.Millisecond, 30 * time.Second
	d := hi
	if attempt < 32 {
		if x := lo << attempt; x > 0 && x < hi {
			d = x
		}
	}
	return d/2 + rand.N(d/2+1)
}

// tickLoop sends every connection's delivered receipts and pings.
func (d *rawDriver) tickLoop(ctx context.Context) {
	t := time.NewTicker(rawTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for _, p := range d.b.pairs {
			rp := p.raw
			p.mu.Lock()
			for rp.ackedSeqs.has(rp.sCursor + 1) {
				rp.sCursor++
			}
			for p.ledger.seen.has(rp.rCursor + 1) {
				rp.rCursor++
			}
			sc, rcur := rp.sCursor, rp.rCursor
			p.mu.Unlock()
			d.tickPeer(rp.sender, sc, now)
			d.tickPeer(rp.receiver, rcur, now)
		}
	}
}

// tickPeer reports cursor if the SDK would now (no receipt in flight,
// receiptEvery since the last answer), and pings once per heartbeat.
func (d *rawDriver) tickPeer(peer *rawPeer, cursor uint64, now time.Time) {
	peer.wmu.Lock()
	defer peer.wmu.Unlock()
	var err error
	if peer.rcptID == 0 && cursor > peer.rcptDone && peer.conv != "" && !now.Before(peer.rcptNext) {
		peer.rcptSeq = cursor
		peer.rcptID, err = peer.writeEnvLocked(&magpiepb.Envelope{Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{
			ConversationId: peer.conv, Kind: magpiepb.ReceiptKind_RECEIPT_KIND_DELIVERED, Seq: cursor}}})
	}
	if err == nil && now.Sub(peer.lastPing) >= peer.hb {
		peer.lastPing = now
		_, err = peer.writeEnvLocked(&magpiepb.Envelope{Body: &magpiepb.Envelope_Ping{Ping: &magpiepb.Ping{Time: now.UnixMilli()}}})
	}
	if err != nil {
		go d.failRun(fmt.Errorf("bench w2: raw connection of %s: write: %v (the raw driver does not reconnect)", peer.name, err))
	}
}

// catchUp pulls the history of p's conversation over the missing range
// (the receiver's own connection, as the SDK's sync would) and books what
// it finds as delivered; the live-stream checks (duplicate, reorder) do
// not apply to it.
func (d *rawDriver) catchUp(ctx context.Context, p *pair) error {
	peer := p.raw.receiver
	p.mu.Lock()
	var miss []uint64
	for _, s := range p.acked {
		if !p.ledger.seen.has(s) {
			miss = append(miss, s)
		}
	}
	for _, u := range p.unsettled {
		for _, s := range u {
			if !p.ledger.seen.has(s) {
				miss = append(miss, s)
			}
		}
	}
	p.mu.Unlock()
	if len(miss) == 0 {
		return nil
	}
	slices.Sort(miss)
	peer.wmu.Lock()
	conv := peer.conv
	peer.wmu.Unlock()
	if conv == "" {
		conv = p.raw.sender.convLocked()
	}
	if conv == "" {
		return errors.New("conversation id unknown")
	}
	after, last := miss[0]-1, miss[len(miss)-1]
	for after < last {
		select { // a late answer to an abandoned request
		case <-peer.replies:
		default:
		}
		peer.wmu.Lock()
		id, err := peer.writeEnvLocked(&magpiepb.Envelope{Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{
			ConversationId: conv, AfterSeq: after, Limit: wire.MaxPageLimit}}})
		peer.histID = id
		peer.wmu.Unlock()
		if err != nil {
			return err
		}
		var frame []byte
		select {
		case frame = <-peer.replies:
		case <-ctx.Done():
			return ctx.Err()
		}
		env := new(magpiepb.Envelope)
		if err := proto.Unmarshal(frame, env); err != nil {
			return err
		}
		if e := env.GetError(); e != nil {
			return fmt.Errorf("history: code %d (%s): %s", e.GetCode(), wire.Code(e.GetCode()), e.GetMessage())
		}
		msgs := env.GetHistoryResult().GetMessages()
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			after = max(after, m.GetSeq())
			if d.b.tamper != nil && d.b.tamper(p.raw.idx, m.GetSeq(), true) {
				continue
			}
			d.recovered(p, m.GetSeq(), m.GetText())
		}
	}
	return nil
}

func (peer *rawPeer) convLocked() string {
	peer.wmu.Lock()
	defer peer.wmu.Unlock()
	return peer.conv
}

// recovered books a message found in history that was not delivered
// live (one that was is skipped).
func (d *rawDriver) recovered(p *pair, seq uint64, text string) {
	p.mu.Lock()
	if p.ledger.seen.has(seq) {
		p.mu.Unlock()
		return
	}
	p.ledger.seen.set(seq)
	p.ledger.delivered++
	p.mu.Unlock()
	d.b.deliveredTotal.Add(1)
	if step, _, _, ok := parseText(text); ok && step >= 0 && step < len(d.b.steps) {
		d.b.steps[step].delivered.Add(1)
	}
}

// parseEnvelope picks an envelope's id and its body (field number and
// bytes) without decoding the body.
func parseEnvelope(frame []byte) (id uint64, body protowire.Number, val []byte, ok bool) {
	for b := frame; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, nil, false
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			id, n = protowire.ConsumeVarint(b)
		case num >= 10 && typ == protowire.BytesType:
			body = num
			val, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return 0, 0, nil, false
		}
		b = b[n:]
	}
	return id, body, val, true
}

// parseMessageBody picks a Message's conversation, seq and text.
func parseMessageBody(msg []byte) (conv []byte, seq uint64, text []byte, ok bool) {
	return pickFields(msg, 1, 2, 6)
}

// parseSendAck picks a SendAck's conversation, seq and client_msg_id.
func parseSendAck(ack []byte) (conv []byte, seq uint64, cmid []byte, ok bool) {
	return pickFields(ack, 1, 2, 3)
}

// pickFields reads the bytes field a, the varint field v and the bytes
// field c of one protobuf message, skipping the rest: the little the raw
// drivers need of a Message or a SendAck, without unmarshalling it.
func pickFields(msg []byte, a, v, c protowire.Number) (av []byte, vv uint64, cv []byte, ok bool) {
	for b := msg; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, nil, false
		}
		b = b[n:]
		switch {
		case num == a && typ == protowire.BytesType:
			av, n = protowire.ConsumeBytes(b)
		case num == v && typ == protowire.VarintType:
			vv, n = protowire.ConsumeVarint(b)
		case num == c && typ == protowire.BytesType:
			cv, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, 0, nil, false
		}
		b = b[n:]
	}
	return av, vv, cv, true
}

// parseError decodes an Error body (rare: decoded in full).
func parseError(val []byte) (code uint32, msg string, retryMS uint32) {
	e := new(magpiepb.Error)
	if proto.Unmarshal(val, e) != nil {
		return uint32(wire.CodeProtocolError), "undecodable error", 0
	}
	return e.GetCode(), e.GetMessage(), e.GetRetryAfterMs()
}
