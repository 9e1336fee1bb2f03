package client

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// In-order, duplicate-free delivery (design §3.4). Per conversation the
// client keeps a cursor: the highest seq such that every message up to it
// was handed to OnMessage (or was this Client's own send). A message at
// cursor+1 is delivered, with any buffered ones that follow it; one at or
// below the cursor is a duplicate; one further ahead is buffered and the
// gap is pulled with history{after_seq: cursor} by one fill goroutine per
// conversation. Live pushes, sync pages, history pages and this Client's
// own acks all go through ingest, so every path agrees.
//
// Transient messages (broadcasts, server push notifications) have seq 0 and
// no place in any stream: ingest hands them to OnMessage at once and they
// never touch a cursor, the buffer or gap detection.

// convState is guarded by Client.mu.
type convState struct {
	cursor      uint64
	known       uint64                // highest seq known to exist
	pending     map[uint64]pendingMsg // seq > cursor+1
	filling     bool                  // a fill goroutine runs
	receiptWant uint64                // delivered cursor to report
	receiptSent uint64                // delivered cursor the server accepted
	receiptBusy bool                  // a receipt goroutine runs
}

type pendingMsg struct {
	m      *magpiepb.Message
	silent bool // this Client's own send: advance the cursor, do not deliver
}

// convLocked returns the state of conversation id, creating it.
func (c *Client) convLocked(id string) *convState {
	cs := c.convs[id]
	if cs == nil {
		cs = &convState{pending: make(map[uint64]pendingMsg)}
		c.convs[id] = cs
	}
	return cs
}

// Cursors returns a copy of the per-conversation cursors.
func (c *Client) Cursors() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.convs))
	for id, cs := range c.convs {
		if cs.cursor > 0 {
			out[id] = cs.cursor
		}
	}
	return out
}

// ingest takes messages from any source. fromSelf marks acks of this
// Client's sends (m carries only the conversation and seq).
func (c *Client) ingest(msgs []*magpiepb.Message, fromSelf bool) {
	if len(msgs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// The conversations touched and their cursors before: a slice, not a
	// map, since a live push or an ack touches one (ingest runs per
	// message) and a page a handful.
	type touch struct {
		id     string
		before uint64
	}
	var buf [1]touch
	touched := buf[:0]
	for _, m := range msgs {
		id, seq := m.GetConversationId(), m.GetSeq()
		if seq == 0 || m.GetTransient() {
			if !fromSelf {
				c.transientLocked(m)
			}
			continue
		}
		if id == "" {
			continue
		}
		cs := c.convLocked(id)
		cs.known = max(cs.known, seq)
		if seq <= cs.cursor {
			continue // duplicate
		}
		if _, dup := cs.pending[seq]; dup {
			continue
		}
		silent := fromSelf
		if !silent && m.GetSenderId() == c.userID {
			_, silent = c.sending[m.GetClientMsgId()]
		}
		if !slices.ContainsFunc(touched, func(t touch) bool { return t.id == id }) {
			touched = append(touched, touch{id, cs.cursor})
		}
		cs.pending[seq] = pendingMsg{m: m, silent: silent}
	}
	for _, t := range touched {
		c.advanceLocked(t.id, t.before)
	}
}

// maxEchoes bounds Client.echoes: a broadcast's echo comes within moments
// of its ack, so only the last few can still be on their way.
const maxEchoes = 16

// transientLocked delivers a transient message unless it is an echo of
// this Client's own broadcast.
func (c *Client) transientLocked(m *magpiepb.Message) {
	onMessage := c.opts.OnMessage
	if onMessage == nil {
		return
	}
	if m.GetSenderId() == c.userID && m.GetClientMsgId() != "" {
		if _, mine := c.sending[m.GetClientMsgId()]; mine {
			return
		}
		if i := slices.Index(c.echoes, m.GetClientMsgId()); i >= 0 {
			c.echoes = slices.Delete(c.echoes, i, i+1)
			return
		}
	}
	msg := messageFromPB(m, c.userID)
	c.events.push(func() { onMessage(msg) })
}

// advanceLocked moves the cursor over contiguous buffered messages, queues
// them for OnMessage, then queues the cursor's persistence and delivered
// receipt; it starts a fill if a gap remains.
func (c *Client) advanceLocked(id string, before uint64) {
	cs := c.convs[id]
	onMessage := c.opts.OnMessage
	for {
		p, ok := cs.pending[cs.cursor+1]
		if !ok {
			break
		}
		delete(cs.pending, cs.cursor+1)
		cs.cursor++
		if !p.silent && onMessage != nil {
			msg := messageFromPB(p.m, c.userID)
			c.events.push(func() { onMessage(msg) })
		}
	}
	if cs.cursor > before {
		seq := cs.cursor
		c.events.push(func() { c.delivered(id, seq) })
	}
	c.maybeFillLocked(id, cs)
}

// skipMissing handles an answer that asked for seqs after `after` and
// started at first > after+1: the server has nothing in between for this
// user (messages before the member's history window), so waiting for them
// would stall the conversation forever.
func (c *Client) skipMissing(id string, after, first uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.convs[id]
	if cs == nil || cs.cursor != after || first <= after+1 {
		return
	}
	c.log.Debug("server has no messages in range", "conversation", id, "after_seq", after, "first", first)
	cs.cursor = first - 1
	for seq := range cs.pending {
		if seq <= cs.cursor {
			delete(cs.pending, seq)
		}
	}
	c.advanceLocked(id, after)
}

func (c *Client) maybeFillLocked(id string, cs *convState) {
	if cs.filling || (len(cs.pending) == 0 && cs.known <= cs.cursor) {
		return
	}
	cs.filling = true
	c.goLocked(func() { c.fill(id) })
}

// fillGrace is how long a gap may stay open before it is pulled.
const fillGrace = 50 * time.Millisecond

// fill pulls the missing range of one conversation until it is caught up.
// Requests wait for a connection and survive reconnects; a refused request
// ends the fill, and the next sync or live message starts another.
func (c *Client) fill(id string) {
	// Most gaps close by themselves within moments: acks of pipelined
	// sends and live pushes overtake each other on their way. Waiting a
	// little saves a history request (and the server a query) for each.
	t := time.NewTimer(fillGrace)
	select {
	case <-t.C:
	case <-c.runCtx.Done():
		t.Stop()
	}
	for {
		c.mu.Lock()
		cs := c.convs[id]
		after := cs.cursor
		if len(cs.pending) == 0 && cs.known <= after {
			cs.filling = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		env := &magpiepb.Envelope{Body: &magpiepb.Envelope_History{History: &magpiepb.HistoryRequest{
			ConversationId: id, AfterSeq: after, Limit: wire.DefaultPageLimit,
		}}}
		reply, err := c.call(c.runCtx, env)
		var msgs []*magpiepb.Message
		if err == nil {
			msgs = reply.GetHistoryResult().GetMessages()
			c.ingest(msgs, false)
			if len(msgs) > 0 {
				c.skipMissing(id, after, msgs[0].GetSeq())
			}
		}
		c.mu.Lock()
		if err != nil || cs.cursor == after {
			// No progress: the server has nothing more, or refused.
			// Forget what we thought existed; a later message retries.
			cs.filling = false
			cs.known = cs.cursor
			c.mu.Unlock()
			if err != nil && c.runCtx.Err() == nil {
				c.log.Warn("filling a gap failed", "conversation", id, "after_seq", after, "err", err)
			}
			return
		}
		c.mu.Unlock()
	}
}

// delivered runs on the callback goroutine after OnMessage returned for the
// messages up to seq: it persists the cursor and reports it to the server.
func (c *Client) delivered(id string, seq uint64) {
	if st := c.opts.Cursors; st != nil {
		if err := st.Save(id, seq); err != nil {
			c.log.Warn("saving cursor failed", "conversation", id, "seq", seq, "err", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.convLocked(id)
	cs.receiptWant = max(cs.receiptWant, seq)
	c.maybeReceiptLocked(id, cs)
}

func (c *Client) maybeReceiptLocked(id string, cs *convState) {
	if cs.receiptBusy || cs.receiptWant <= cs.receiptSent {
		return
	}
	cs.receiptBusy = true
	c.goLocked(func() { c.sendReceipts(id) })
}

// sendReceipts keeps at most one delivered receipt per conversation in
// flight, always reporting the newest cursor.
func (c *Client) sendReceipts(id string) {
	for {
		c.mu.Lock()
		cs := c.convs[id]
		want := cs.receiptWant
		if want <= cs.receiptSent {
			cs.receiptBusy = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		env := &magpiepb.Envelope{Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{
			ConversationId: id, Kind: magpiepb.ReceiptKind_RECEIPT_KIND_DELIVERED, Seq: want,
		}}}
		_, err := c.call(c.runCtx, env)
		c.mu.Lock()
		if err != nil {
			cs.receiptBusy = false
			c.mu.Unlock()
			if c.runCtx.Err() == nil {
				c.log.Warn("delivered receipt failed", "conversation", id, "seq", want, "err", err)
			}
			return
		}
		cs.receiptSent = max(cs.receiptSent, want)
		c.mu.Unlock()
		// Coalesce: a busy conversation reports delivery a few times a
		// second, not once per message (each report is a write on the
		// server and a push to the sender).
		t := time.NewTimer(receiptInterval)
		select {
		case <-t.C:
		case <-c.runCtx.Done():
			t.Stop()
		}
	}
}

// receiptInterval is the least time between two delivered receipts of one
// conversation.
const receiptInterval = 100 * time.Millisecond

// resumeAfterSync restarts fills and receipts that stopped with the last
// connection.
func (c *Client) resumeAfterSync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, cs := range c.convs {
		c.maybeFillLocked(id, cs)
		c.maybeReceiptLocked(id, cs)
	}
}

// receiptKey names one cursor: a user's delivered or read position in a
// conversation.
type receiptKey struct {
	conv string
	user int64
	kind ReceiptKind
}

func (c *Client) receiptPushed(r *magpiepb.Receipt) {
	f := c.opts.OnReceipt
	if f == nil {
		return
	}
	rc := Receipt{
		ConversationID: r.GetConversationId(),
		Kind:           ReceiptKind(r.GetKind()),
		Seq:            r.GetSeq(),
		UserID:         r.GetUserId(),
		Username:       r.GetUsername(),
	}
	// Receipts travel different paths (logic nodes, commit loops) and may
	// arrive out of order; cursors only move forward, so an older one
	// carries no news.
	key := receiptKey{rc.ConversationID, rc.UserID, rc.Kind}
	c.mu.Lock()
	if c.receipts == nil {
		c.receipts = map[receiptKey]uint64{}
	}
	stale := c.receipts[key] >= rc.Seq
	if !stale {
		c.receipts[key] = rc.Seq
	}
	c.mu.Unlock()
	if stale {
		return
	}
	c.events.push(func() { f(rc) })
}

func (c *Client) conversationPushed(st *magpiepb.ConversationState) {
	f := c.opts.OnConversation
	if f == nil {
		return
	}
	cs := conversationFromPB(st)
	c.events.push(func() { f(cs) })
}

func (c *Client) typingPushed(t *magpiepb.Typing) {
	f := c.opts.OnTyping
	if f == nil {
		return
	}
	ty := Typing{ConversationID: t.GetConversationId(), UserID: t.GetUserId(), Username: t.GetUsername(), Stopped: t.GetStopped()}
	c.events.push(func() { f(ty) })
}

func (c *Client) noticePushed(n *magpiepb.Notice) {
	f := c.opts.OnNotice
	if f == nil {
		return
	}
	no := Notice{Type: NoticeType(n.GetType()), At: time.UnixMilli(n.GetAt()), ActorID: n.GetActorId(), Actor: n.GetActor(),
		GroupID: n.GetGroupId(), GroupName: n.GetGroupName(), ScheduledID: n.GetScheduledId(), Reason: n.GetReason(),
		Code: wire.Code(n.GetCode()), ToUser: n.GetToUser(), ToGroup: n.GetToGroup()}
	c.events.push(func() { f(no) })
}

// startResync starts a periodic resync on session s (Options.ResyncEvery)
// unless one runs or s is not the current, synced session. Live pushes are
// best effort, and a lost push of a conversation's last message leaves no
// later message to reveal the gap: only a sync from the cursors finds it.
func (c *Client) startResync(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.syncing || c.sess != s || c.state != StateReady {
		return
	}
	c.syncing = true
	c.goLocked(func() {
		defer func() {
			c.mu.Lock()
			c.syncing = false
			c.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(c.runCtx, time.Minute)
		defer cancel()
		if err := c.syncFrom(ctx, s, true); err != nil {
			if c.runCtx.Err() == nil && !s.isClosed() {
				c.log.Debug("periodic resync failed", "err", err)
			}
			return
		}
		c.resumeAfterSync()
	})
}

// syncOn pulls everything after the cursors, page by page, reporting every
// conversation state the server returns.
func (c *Client) syncOn(ctx context.Context, s *session) error { return c.syncFrom(ctx, s, false) }

// syncFrom pulls everything after the cursors, page by page. Cursors for
// the next page come from what the pages returned, so a hole in the local
// cursors cannot make the same page repeat forever. A quiet sync (the
// periodic resync) reports only the states of conversations it returns
// messages for, so it does not repeat every state to OnConversation.
func (c *Client) syncFrom(ctx context.Context, s *session, quiet bool) error {
	c.mu.Lock()
	cur := make(map[string]uint64, len(c.convs))
	for id, cs := range c.convs {
		cur[id] = cs.cursor
	}
	c.mu.Unlock()
	for {
		req := &magpiepb.SyncRequest{Limit: wire.MaxPageLimit}
		for _, id := range sortedKeys(cur) {
			if len(req.Cursors) < wire.MaxCursors {
				req.Cursors = append(req.Cursors, &magpiepb.Cursor{ConversationId: id, Seq: cur[id]})
			}
		}
		reply, err := s.request(ctx, &magpiepb.Envelope{Body: &magpiepb.Envelope_Sync{Sync: req}})
		if err != nil {
			return err
		}
		if e := reply.GetError(); e != nil {
			return errorFromWire(e)
		}
		res := reply.GetSyncResult()
		if res == nil {
			return errors.New("magpie: unexpected answer to sync")
		}
		// States first: an application can tell read from unread history.
		withMsgs := make(map[string]bool)
		for _, m := range res.GetMessages() {
			withMsgs[m.GetConversationId()] = true
		}
		for _, st := range res.GetConversations() {
			if !quiet || withMsgs[st.GetConversationId()] {
				c.conversationPushed(st)
			}
		}
		c.ingest(res.GetMessages(), false)
		firsts := make(map[string]uint64)
		for _, m := range res.GetMessages() {
			if _, ok := firsts[m.GetConversationId()]; !ok {
				firsts[m.GetConversationId()] = m.GetSeq()
				c.skipMissing(m.GetConversationId(), cur[m.GetConversationId()], m.GetSeq())
			}
		}
		progressed := false
		for _, m := range res.GetMessages() {
			if id := m.GetConversationId(); m.GetSeq() > cur[id] {
				cur[id], progressed = m.GetSeq(), true
			}
		}
		c.mu.Lock()
		for _, st := range res.GetConversations() {
			cs := c.convLocked(st.GetConversationId())
			cs.known = max(cs.known, st.GetLastSeq())
			cs.receiptSent = max(cs.receiptSent, st.GetDeliveredSeq())
		}
		c.mu.Unlock()
		if !res.GetMore() || !progressed {
			return nil
		}
	}
}

// Sync pulls everything missed since the cursors. Connect and every
// reconnect already do this; call it to catch up without waiting for a
// live message (after a long sleep of the host, for example).
func (c *Client) Sync(ctx context.Context) error {
	s, err := c.ready(ctx)
	if err != nil {
		return err
	}
	if err := c.syncOn(ctx, s); err != nil {
		return err
	}
	c.resumeAfterSync()
	return nil
}

func sortedKeys(m map[string]uint64) []string { return slices.Sorted(maps.Keys(m)) }
