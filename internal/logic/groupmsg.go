package logic

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// SmallGroup is the largest group whose members receive each other's
// receipts live (see MoveCursor).
const SmallGroup = 100

// isGroupID reports whether id has the shape of a group id, "g_<n>".
func isGroupID(id string) bool {
	n, ok := strings.CutPrefix(id, "g_")
	if !ok || len(id) > wire.MaxConversationID {
		return false
	}
	_, err := strconv.ParseUint(n, 10, 63)
	return err == nil
}

func validGroupID(id string) error {
	if !isGroupID(id) {
		return badRequest("group id: want g_<number>")
	}
	return nil
}

// clientMsgID validates a client's message id, or makes one when the
// client sent none (such sends cannot be retried idempotently).
func clientMsgID(id string) (string, error) {
	if id == "" {
		return "srv-" + randomID(12), nil
	}
	if err := wire.ValidID(id, wire.MaxClientMsgID); err != nil {
		return "", badRequest("client_msg_id: " + err.Error())
	}
	return id, nil
}

// validBody checks a message's text; with a file, the text is an optional
// caption.
func validBody(text string, hasFile bool) error {
	if text == "" && hasFile {
		return nil
	}
	if err := wire.ValidText(text); err != nil {
		if len(text) > wire.MaxText {
			return &Error{Code: wire.CodeTooLarge, Msg: err.Error(), Err: ErrBadRequest}
		}
		return badRequest(err.Error())
	}
	return nil
}

// fileRef checks that the sender uploaded the file and describes it for
// the message; nil without a file id.
func (s *Service) fileRef(ctx context.Context, from Identity, fileID string) (*store.FileRef, error) {
	if fileID == "" {
		return nil, nil
	}
	if s.cfg.Files == nil {
		return nil, badRequest("file messages are not enabled on this server")
	}
	if err := wire.ValidToken(fileID, 128); err != nil {
		return nil, badRequest("file_id: " + err.Error())
	}
	meta, err := s.cfg.Files.Stat(ctx, fileID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &Error{Code: wire.CodeNotFound, Msg: "no such file", Err: err}
	} else if err != nil {
		return nil, err
	}
	if meta.OwnerID != from.UserID {
		return nil, &Error{Code: wire.CodeForbidden, Msg: "you can only send files you uploaded", Err: store.ErrForbidden}
	}
	return &store.FileRef{ID: meta.ID, Name: meta.Name, ContentType: meta.ContentType, Size: meta.Size}, nil
}

func fileKind(f *store.FileRef) store.MessageKind {
	if f != nil {
		return store.KindFile
	}
	return store.KindText
}

// prepareGroup readies a group message. Membership and mutes are checked
// by the store in the transaction that assigns the seq, not here.
func (s *Service) prepareGroup(ctx context.Context, from Identity, req SendRequest, given bool) (*pendingSend, error) {
	if err := validGroupID(req.ToGroup); err != nil {
		return nil, err
	}
	file, err := s.fileRef(ctx, from, req.FileID)
	if err != nil {
		return nil, err
	}
	stored, err := s.beforeSend(ctx, OutgoingMessage{
		From: from.Username, FromID: from.UserID, ToGroup: req.ToGroup, ConversationID: req.ToGroup,
		ClientMsgID: req.ClientMsgID, Text: req.Text, FileID: req.FileID,
	}, given)
	if err != nil {
		return nil, err
	}
	return &pendingSend{from: from, stored: stored, req: store.AppendRequest{
		ConversationID: req.ToGroup, SenderID: from.UserID, ClientMsgID: req.ClientMsgID,
		Text: req.Text, Kind: fileKind(file), File: file,
	}}, nil
}

// mayBroadcast: the --admins users, or anyone with --allow-broadcast.
func (s *Service) mayBroadcast(username string) bool {
	if s.cfg.AllowBroadcast {
		return true
	}
	for _, a := range s.cfg.Admins {
		if strings.EqualFold(strings.TrimSpace(a), username) {
			return true
		}
	}
	return false
}

// broadcast sends a transient text to every connection online. It is not
// stored, so the ack has seq 0 and no conversation.
// prepareBroadcast checks a broadcast (rights, body, the before-send
// hook) and returns the step that delivers it, which sendSteps runs in
// the connection's order.
func (s *Service) prepareBroadcast(ctx context.Context, from Identity, req SendRequest) (deliver func() Ack, err error) {
	switch {
	case req.ToUser != "" || req.ToGroup != "" || req.FileID != "":
		return nil, badRequest("a broadcast has only text: no to_user, to_group or file_id")
	case !s.mayBroadcast(from.Username):
		return nil, &Error{Code: wire.CodeForbidden, Msg: "broadcast is allowed for server admins only", Err: store.ErrForbidden}
	}
	if err := validBody(req.Text, false); err != nil {
		return nil, err
	}
	if req.ClientMsgID, err = clientMsgID(req.ClientMsgID); err != nil {
		return nil, err
	}
	if s.cfg.Hooks != nil {
		if err := s.cfg.Hooks.BeforeSend(ctx, OutgoingMessage{From: from.Username, FromID: from.UserID,
			ClientMsgID: req.ClientMsgID, Text: req.Text}); err != nil {
			return nil, err
		}
	}
	return func() Ack {
		now := s.now()
		s.deliverTransient(nil, true, &magpiepb.Message{
			SenderId: from.UserID, Sender: from.Username, ClientMsgId: req.ClientMsgID, Text: req.Text, SentAt: now.UnixMilli(),
		})
		return Ack{ClientMsgID: req.ClientMsgID, SentAt: now}
	}, nil
}

// ChangeRequest recalls or edits the message Seq of a conversation.
type ChangeRequest struct {
	ConversationID string
	Seq            uint64
	Text           string // edits: the new text
	ClientMsgID    string
}

// Recall stores a RECALL of req.Seq and waits for its ack.
func (s *Service) Recall(ctx context.Context, from Identity, req ChangeRequest) (Ack, error) {
	return s.wait(ctx, func(done func(Ack, error)) { s.ChangeAsync(ctx, from, store.KindRecall, req, nil, done) })
}

// Edit stores an EDIT of req.Seq and waits for its ack.
func (s *Service) Edit(ctx context.Context, from Identity, req ChangeRequest) (Ack, error) {
	return s.wait(ctx, func(done func(Ack, error)) { s.ChangeAsync(ctx, from, store.KindEdit, req, nil, done) })
}

func (s *Service) wait(ctx context.Context, start func(done func(Ack, error))) (Ack, error) {
	type result struct {
		ack Ack
		err error
	}
	ch := make(chan result, 1)
	start(func(a Ack, err error) { ch <- result{a, err} })
	select {
	case r := <-ch:
		return r.ack, r.err
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	}
}

// ChangeAsync queues a RECALL or EDIT through the commit loop, like a send:
// who may change what is decided by the store in the same transaction
// that stores the change and alters the original.
func (s *Service) ChangeAsync(ctx context.Context, from Identity, kind store.MessageKind, req ChangeRequest, origin *magpiepb.ConnRef, done func(Ack, error)) {
	if queue := s.changeSteps(ctx, from, kind, req, origin, done); queue != nil {
		queue()
	}
}

// changeSteps is ChangeAsync in the two steps of a laneItem (see sendSteps).
func (s *Service) changeSteps(ctx context.Context, from Identity, kind store.MessageKind, req ChangeRequest, origin *magpiepb.ConnRef, done func(Ack, error)) func() {
	p, err := s.prepareChange(ctx, from, kind, req)
	if err != nil {
		done(Ack{}, err)
		return nil
	}
	return func() { s.enqueue(p, origin, done) }
}

func (s *Service) prepareChange(ctx context.Context, from Identity, kind store.MessageKind, req ChangeRequest) (*pendingSend, error) {
	if err := validConversationID(req.ConversationID); err != nil {
		return nil, err
	}
	if req.Seq == 0 {
		return nil, badRequest("seq is required")
	}
	if kind == store.KindEdit {
		if err := validBody(req.Text, false); err != nil {
			return nil, err
		}
	} else {
		req.Text = ""
	}
	given := req.ClientMsgID != ""
	var err error
	if req.ClientMsgID, err = clientMsgID(req.ClientMsgID); err != nil {
		return nil, err
	}
	p := &pendingSend{from: from, req: store.AppendRequest{
		ConversationID: req.ConversationID, SenderID: from.UserID, ClientMsgID: req.ClientMsgID,
		Text: req.Text, Kind: kind, RefSeq: req.Seq, RecallWindow: s.cfg.RecallWindow,
	}}
	if !isGroupID(req.ConversationID) {
		// A private chat: delivery needs the other member.
		peer, ok := privatePeer(req.ConversationID, from.UserID)
		if !ok {
			return nil, &Error{Code: wire.CodeNotMember, Msg: "not a member of the conversation", Err: store.ErrNotMember}
		}
		name, err := s.usernameOf(ctx, peer)
		if err != nil {
			return nil, err
		}
		p.peer, p.peerID = name, peer
	}
	if kind == store.KindEdit {
		m := OutgoingMessage{From: from.Username, FromID: from.UserID, ConversationID: req.ConversationID,
			ClientMsgID: req.ClientMsgID, Text: req.Text}
		if p.peerID != 0 {
			m.ToUser = p.peer
		} else {
			m.ToGroup = req.ConversationID
		}
		if p.stored, err = s.beforeSend(ctx, m, given); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parsePrivateID returns the two users of a canonical "p_<a>_<b>".
func parsePrivateID(convID string) (a, b int64, ok bool) {
	rest, ok1 := strings.CutPrefix(convID, "p_")
	as, bs, ok2 := strings.Cut(rest, "_")
	a, err1 := strconv.ParseInt(as, 10, 64)
	b, err2 := strconv.ParseInt(bs, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || store.PrivateConversationID(a, b) != convID {
		return 0, 0, false
	}
	return a, b, true
}

// privatePeer returns the other user of "p_<a>_<b>" if user is a or b.
func privatePeer(convID string, user int64) (int64, bool) {
	a, b, ok := parsePrivateID(convID)
	if !ok {
		return 0, false
	}
	switch user {
	case a:
		return b, true
	case b:
		return a, true
	}
	return 0, false
}

// groupMembers caches the member lists of groups across commit batches, so
// a busy group's members are not read from the store for every message.
//
// An entry is used only for the message right after the one it was last
// used or loaded for (seq+1): every change of a group's member set stores an
// event with the group's next seq in the transaction that makes the change
// (store.Groups: CreateGroup, ChangeGroup), so if no seq lies between the
// two, the member set cannot have changed. Any other seq — an event, a
// message committed by another commit loop or another logic node, a seq
// fanned out out of order — reloads the list. A removed member therefore
// never receives a message whose seq is above their removal's, on any node,
// without the cache having to hear about the removal.
type groupMembers struct {
	mu      sync.Mutex
	groups  map[string]memberList
	entries int // member ids held, to bound the memory
}

type memberList struct {
	ids []int64 // shared, never modified
	seq uint64  // valid for the message seq+1
}

// maxCachedMembers bounds the cache (8 bytes each); it is emptied past it.
const maxCachedMembers = 1 << 20

// next returns the cached members of conv for the message seq, if valid,
// and makes the entry valid for seq+1.
func (c *groupMembers) next(conv string, seq uint64) ([]int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.groups[conv]
	if !ok || e.seq+1 != seq {
		return nil, false
	}
	e.seq = seq
	c.groups[conv] = e
	return e.ids, true
}

// put caches ids, read from the store after the message seq committed.
func (c *groupMembers) put(conv string, seq uint64, ids []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups == nil || c.entries+len(ids) > maxCachedMembers {
		c.groups, c.entries = make(map[string]memberList), 0
	}
	if old, ok := c.groups[conv]; ok {
		c.entries -= len(old.ids)
	}
	c.groups[conv] = memberList{ids: ids, seq: seq}
	c.entries += len(ids)
}

// deliverGroup pushes m to every online device of every member but the
// sending connection: one envelope, encoded once, one publish per gateway.
func (s *Service) deliverGroup(conns []*magpiepb.ConnRef, p *pendingSend, m store.Message) []*magpiepb.ConnRef {
	ids, ok := s.members.next(m.ConversationID, m.Seq)
	if !ok {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		var err error
		ids, err = s.store.Members(ctx, m.ConversationID)
		cancel()
		if err != nil {
			// Stored and acked: devices will sync it.
			s.log.Warn("group fan-out: members", "group", m.ConversationID, "err", err)
			return conns
		}
		s.members.put(m.ConversationID, m.Seq, ids)
	}
	for _, id := range ids {
		conns = s.presence.AppendConns(conns, id)
	}
	conns = without(conns, p.origin)
	if len(conns) > 0 {
		msg := MessagePB(m)
		msg.Sender = p.from.Username
		s.publish(conns, encode(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: msg}}))
	}
	return conns
}

// emitStored reports a committed message to the hooks.
func (s *Service) emitStored(p *pendingSend, m store.Message) {
	ev := StoredEvent{
		ConversationID: m.ConversationID, Seq: m.Seq, From: p.from.Username, FromID: m.SenderID,
		ToUser: p.peer, ClientMsgID: m.ClientMsgID, Text: m.Text, SentAt: m.SentAt.UnixMilli(), RefSeq: m.RefSeq,
	}
	if isGroupID(m.ConversationID) {
		ev.ToGroup = m.ConversationID
	}
	if m.File != nil {
		ev.FileID = m.File.ID
	}
	switch m.Kind {
	case store.KindRecall:
		s.emit("message.recalled", ev)
	case store.KindEdit:
		s.emit("message.edited", ev)
	default:
		s.emit("message.stored", ev)
	}
}

// explain gives a store error its client-visible code and text: a rule's
// refusal carries both; the store's sentinels get a fixed text, never the
// store's wording (it names ids that are not for clients).
func explain(err error) error {
	var refusal *rules.Refusal
	switch {
	case err == nil:
		return nil
	case errors.As(err, &refusal):
		return &Error{Code: refusal.Code(), Msg: refusal.Error(), Err: err}
	case errors.Is(err, store.ErrNotMember):
		return &Error{Code: wire.CodeNotMember, Msg: "not a member of the conversation", Err: err}
	case errors.Is(err, store.ErrNotFound):
		return &Error{Code: wire.CodeNotFound, Msg: "not found", Err: err}
	}
	return err
}
