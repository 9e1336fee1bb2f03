package logic

import (
	"context"
	"errors"
	"hash/maphash"
	"strconv"
	"time"

	"github.com/magpie-im/magpie/internal/batch"
	"github.com/magpie-im/magpie/internal/cluster/clusterpb"
	"github.com/magpie-im/magpie/internal/crashpoint"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// SendRequest is a message from an authenticated user.
type SendRequest struct {
	ToUser      string
	ToGroup     string
	Text        string // optional (a caption) when FileID is set
	ClientMsgID string
	FileID      string    // an upload of the sender's (Config.Files)
	Broadcast   bool      // to everyone online, not stored (see broadcast)
	SendAt      time.Time // if set: stored now, sent then (scheduled.go)
	ReplyTo     uint64    // the seq of an earlier message of the conversation this one answers (stored as RefSeq)
}

// Ack answers a send once the message is committed.
type Ack struct {
	ConversationID string
	Seq            uint64
	ClientMsgID    string
	SentAt         time.Time
	Duplicate      bool
	ScheduledID    int64     // a scheduled send: its id (Seq is 0 until it is sent)
	SendAt         time.Time // a scheduled send: when it will be sent
}

// pendingSend is one send waiting for the commit loop.
type pendingSend struct {
	req    store.AppendRequest
	from   Identity
	peer   string             // private chats: the receiver's username
	peerID int64              // private chats: the receiver
	origin *clusterpb.ConnRef // the sending connection, skipped in fan-out
	done   func(Ack, error)
	// stored is set for a retry of a message found stored before the
	// before-send hook was asked: it is answered with this ACK, in the
	// lane's order, without the commit loop.
	stored *Ack
}

// StoredEvent is the data of a message.stored event.
type StoredEvent struct {
	ConversationID string `json:"conversation_id"`
	Seq            uint64 `json:"seq"`
	From           string `json:"from"`
	FromID         int64  `json:"from_id"`
	ToUser         string `json:"to_user,omitempty"`
	ToGroup        string `json:"to_group,omitempty"`
	ClientMsgID    string `json:"client_msg_id"`
	Text           string `json:"text"`
	SentAt         int64  `json:"sent_at"`
	FileID         string `json:"file_id,omitempty"`
	RefSeq         uint64 `json:"ref_seq,omitempty"`          // the changed message (recalled, edited) or the one replied to (stored)
	RemovedByAdmin bool   `json:"removed_by_admin,omitempty"` // message.recalled by the admin API
}

// Send stores a message and waits for its ACK. If ctx ends first the
// message may still commit; a retry with the same client id returns its seq.
func (s *Service) Send(ctx context.Context, from Identity, req SendRequest) (Ack, error) {
	if err := s.allowSend(from.UserID); err != nil {
		return Ack{}, err
	}
	return s.wait(ctx, func(done func(Ack, error)) { s.SendAsync(ctx, from, req, nil, done) })
}

// SendAsync validates and queues a message for the commit loop; done is
// called exactly once, after the commit (or on failure).
func (s *Service) SendAsync(ctx context.Context, from Identity, req SendRequest, origin *clusterpb.ConnRef, done func(Ack, error)) {
	if queue := s.sendSteps(ctx, from, req, origin, done); queue != nil {
		queue()
	}
}

// sendSteps is SendAsync in the two steps of a laneItem: it validates and
// authorizes now (the before-send hook included) and returns the step that
// queues the message, or nil once done was called.
func (s *Service) sendSteps(ctx context.Context, from Identity, req SendRequest, origin *clusterpb.ConnRef, done func(Ack, error)) func() {
	if req.ReplyTo != 0 && (!req.SendAt.IsZero() || req.Broadcast) {
		done(Ack{}, invalid("reply_to cannot be scheduled or broadcast"))
		return nil
	}
	if !req.SendAt.IsZero() {
		ack, err := s.schedule(ctx, from, req)
		if err != nil {
			done(Ack{}, err)
			return nil
		}
		return func() { done(ack, nil) }
	}
	if req.Broadcast {
		deliver, err := s.prepareBroadcast(ctx, from, req)
		if err != nil {
			done(Ack{}, err)
			return nil
		}
		return func() { done(deliver(), nil) }
	}
	p, err := s.prepare(ctx, from, req)
	if err != nil {
		done(Ack{}, err)
		return nil
	}
	return func() { s.enqueue(p, origin, done) }
}

// enqueue hands a prepared message to the commit loop.
func (s *Service) enqueue(p *pendingSend, origin *clusterpb.ConnRef, done func(Ack, error)) {
	p.origin, p.done = origin, done
	if p.stored != nil {
		s.stats.duplicates.Add(1)
		done(*p.stored, nil)
		return
	}
	// One conversation always goes to the same commit loop, so messages
	// queued in order commit in order.
	q := s.sends[shard(p.req.ConversationID, len(s.sends))]
	full := false
	if !s.accepting(func() { full = !q.Add(p) }) {
		done(Ack{}, ErrStopped)
		return
	}
	if full {
		done(Ack{}, errBusy)
	}
}

// shardSeed is fixed for the process, so a key always maps to one shard.
var shardSeed = maphash.MakeSeed()

// shard picks one of n for key.
func shard(key string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(maphash.String(shardSeed, key) % uint64(n))
}

func (s *Service) prepare(ctx context.Context, from Identity, req SendRequest) (*pendingSend, error) {
	if err := validBody(req.Text, req.FileID != ""); err != nil {
		return nil, err
	}
	given := req.ClientMsgID != ""
	var err error
	if req.ClientMsgID, err = clientMsgID(req.ClientMsgID); err != nil {
		return nil, err
	}
	switch {
	case req.ToGroup != "" && req.ToUser != "":
		return nil, invalid("set to_user or to_group, not both")
	case req.ToGroup != "":
		return s.prepareGroup(ctx, from, req, given)
	case req.ToUser == "":
		return nil, invalid("to_user is required")
	}
	if err := wire.ValidName(req.ToUser); err != nil {
		return nil, invalid("to_user: " + err.Error())
	}
	peer, err := s.userByName(ctx, from.AppID, req.ToUser)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("no such user", err)
	} else if err != nil {
		return nil, err
	}
	file, err := s.fileRef(ctx, from, req.FileID)
	if err != nil {
		return nil, err
	}
	requireFriend, err := s.requireFriendship(ctx, from.AppID)
	if err != nil {
		return nil, err
	}
	stored, err := s.beforeSend(ctx, from.AppID, OutgoingMessage{
		From: from.Username, FromID: from.UserID, ToUser: peer.Username,
		ConversationID: store.PrivateConversationID(from.UserID, peer.ID), ClientMsgID: req.ClientMsgID, Text: req.Text,
		FileID: req.FileID,
	}, given)
	if err != nil {
		return nil, err
	}
	return &pendingSend{
		stored: stored,
		from:   from,
		peer:   peer.Username,
		peerID: peer.ID,
		req: store.AppendRequest{
			ConversationID: store.PrivateConversationID(from.UserID, peer.ID),
			SenderID:       from.UserID,
			PeerID:         peer.ID,
			ClientMsgID:    req.ClientMsgID,
			Text:           req.Text,
			Kind:           fileKind(file),
			RefSeq:         req.ReplyTo,
			File:           file,
			RequireFriend:  requireFriend,
		},
	}, nil
}

// userByName finds a user of an app; lookups are cached: usernames never
// change owner.
func (s *Service) userByName(ctx context.Context, app int64, name string) (store.User, error) {
	app = appOrDefault(app)
	key := name
	if app != store.DefaultApp {
		key = strconv.FormatInt(app, 10) + ":" + name
	}
	if v, ok := s.names.Load(key); ok {
		return v.(store.User), nil
	}
	gen := s.namesGen.Load()
	u, err := s.store.UserByName(ctx, app, name)
	if err != nil {
		return u, err
	}
	u.PasswordHash = ""
	if s.namesGen.Load() != gen {
		return u, nil // a user was forgotten meanwhile: this read may predate it
	}
	if s.namesLen.Add(1) > 1_000_000 {
		s.names.Clear()
		s.namesLen.Store(0)
	}
	s.names.Store(key, u)
	return u, nil
}

// newCommitLoop is one group-commit loop for sends (package batch): each
// batch is one transaction, and its ACKs and deliveries (finish) overlap
// the next batch's commit.
func (s *Service) newCommitLoop() *batch.Loop[*pendingSend, store.AppendResult] {
	return batch.New(batch.Config[*pendingSend, store.AppendResult]{
		Depth: s.cfg.SendQueue, Max: s.cfg.MaxBatch, Commit: s.commit, Answer: s.finish, Overlap: 4,
		Window: s.cfg.CommitWindow,
	})
}

func (s *Service) commit(sends []*pendingSend) ([]store.AppendResult, error) {
	reqs := make([]store.AppendRequest, len(sends))
	now := s.now()
	for i, p := range sends {
		reqs[i] = p.req
		reqs[i].SentAt = now
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.stats.batches.Add(1)
	return s.store.AppendMessages(ctx, reqs)
}

// finish ACKs every sender of the batch first, then delivers the new
// messages to online devices: an ACK is the reply its sender waits on, and
// a delivery's presence lookups and publishes would otherwise hold back
// every later ACK of the batch.
func (s *Service) finish(sends []*pendingSend, results []store.AppendResult, err error) {
	if err != nil {
		s.stats.batchFailures.Add(1)
		s.log.Error("commit batch", "size", len(sends), "err", err)
		err := unavailable("message not stored, retry", 200*time.Millisecond, err)
		for _, p := range sends {
			p.done(Ack{}, err)
		}
		return
	}
	crashpoint.Reached(crashpoint.CommitPublish) // test builds only (-tags faulthooks)
	// The ACKs go first: senders learn soonest. Only a faulthooks build
	// armed at PublishACK swaps the two, to crash between them.
	if crashpoint.Armed(crashpoint.PublishACK) {
		s.deliverStored(sends, results)
		crashpoint.Reached(crashpoint.PublishACK)
		s.ackStored(sends, results)
		return
	}
	s.ackStored(sends, results)
	s.deliverStored(sends, results)
}

// ackStored answers each sender of a committed batch.
func (s *Service) ackStored(sends []*pendingSend, results []store.AppendResult) {
	for i, p := range sends {
		r := results[i]
		if r.Err != nil {
			p.done(Ack{}, explain(r.Err))
			continue
		}
		if r.Duplicate {
			s.stats.duplicates.Add(1)
		} else {
			s.stats.stored.Add(1)
		}
		m := r.Message
		p.done(Ack{ConversationID: m.ConversationID, Seq: m.Seq, ClientMsgID: m.ClientMsgID, SentAt: m.SentAt, Duplicate: r.Duplicate}, nil)
	}
}

// deliverStored pushes a committed batch's new messages to online devices.
func (s *Service) deliverStored(sends []*pendingSend, results []store.AppendResult) {
	var conns []*clusterpb.ConnRef
	for i, p := range sends {
		r := results[i]
		if r.Err != nil || r.Duplicate {
			continue // a duplicate was delivered when first stored; devices sync anything missed
		}
		m := r.Message
		s.emitStored(p, m)
		if isGroupID(m.ConversationID) {
			conns = s.deliverGroup(conns[:0], p, m)
		} else {
			conns = s.deliverPrivate(conns[:0], p, m)
		}
	}
}

// deliverPrivate pushes m to every device of the receiver and every other
// device of the sender, one publish per gateway.
func (s *Service) deliverPrivate(conns []*clusterpb.ConnRef, p *pendingSend, m store.Message) []*clusterpb.ConnRef {
	m.Sender = p.from.Username
	if p.peerID != p.from.UserID {
		conns = s.presence.AppendConns(conns[:0], p.peerID)
		if len(conns) > 0 {
			s.publish(conns, s.enc.Message(m, p.from.Username))
		}
	}
	conns = s.presence.AppendConns(conns[:0], p.from.UserID)
	conns = without(conns, p.origin)
	if len(conns) > 0 {
		s.publish(conns, s.enc.Message(m, p.peer))
	}
	return conns
}

func without(conns []*clusterpb.ConnRef, skip *clusterpb.ConnRef) []*clusterpb.ConnRef {
	if skip == nil {
		return conns
	}
	out := conns[:0]
	for _, c := range conns {
		if c.Conn != skip.Conn || c.Gateway != skip.Gateway {
			out = append(out, c)
		}
	}
	return out
}

// publish sends one envelope to many connections: one Delivery per gateway.
func (s *Service) publish(conns []*clusterpb.ConnRef, env []byte) {
	if len(conns) == 1 {
		if err := s.out.Deliver(conns[0].Gateway, &clusterpb.Delivery{Conns: []uint64{conns[0].Conn}, Envelope: env}); err != nil {
			s.log.Warn("deliver", "gateway", conns[0].Gateway, "err", err)
		}
		return
	}
	for gw, ids := range byGateway(conns) {
		if err := s.out.Deliver(gw, &clusterpb.Delivery{Conns: ids, Envelope: env}); err != nil {
			s.log.Warn("deliver", "gateway", gw, "err", err)
		}
	}
}
