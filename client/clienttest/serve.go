package clienttest

import (
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/magpie-im/magpie/proto/magpiepb"
	"github.com/magpie-im/magpie/proto/wire"
)

// serve runs one long connection: auth first, then requests in order.
func (s *Server) serve(c *conn, read func() ([]byte, error)) {
	defer c.close()
	b, err := read()
	if err != nil {
		return
	}
	env := new(magpiepb.Envelope)
	if proto.Unmarshal(b, env) != nil || env.GetAuth() == nil {
		c.send(errEnv(env.GetId(), wire.CodeNotAuthenticated))
		return
	}
	s.mu.Lock()
	name, ok := s.tokens[env.GetAuth().GetToken()]
	hb := s.heartbeat
	if ok && !s.closed {
		c.user, c.device = name, env.GetAuth().GetToken()
		s.conns[c] = true
	}
	var uid int64
	if ok {
		uid = s.users[name].id
	}
	s.mu.Unlock()
	if !ok {
		c.send(errEnv(env.GetId(), wire.CodeUnauthenticated))
		return
	}
	defer func() { s.mu.Lock(); delete(s.conns, c); s.mu.Unlock() }()
	c.send(&magpiepb.Envelope{Id: env.GetId(), Body: &magpiepb.Envelope_AuthOk{AuthOk: &magpiepb.AuthOK{
		UserId: uid, Username: name, Device: c.device, HeartbeatSeconds: hb}}})
	for {
		b, err := read()
		if err != nil {
			return
		}
		req := new(magpiepb.Envelope)
		if proto.Unmarshal(b, req) != nil {
			return
		}
		if reply := s.handle(c, req); reply != nil {
			reply.Id = req.GetId()
			c.send(reply)
		}
	}
}

func errEnv(id uint64, code wire.Code) *magpiepb.Envelope {
	return &magpiepb.Envelope{Id: id, Body: &magpiepb.Envelope_Error{Error: &magpiepb.Error{Code: uint32(code), Message: code.String()}}}
}

// handle answers one request; nil means no answer (the connection was dropped).
func (s *Server) handle(c *conn, req *magpiepb.Envelope) *magpiepb.Envelope {
	switch b := req.Body.(type) {
	case *magpiepb.Envelope_Ping:
		s.mu.Lock()
		mute := s.mute
		s.mu.Unlock()
		if mute {
			return nil
		}
		return &magpiepb.Envelope{Body: &magpiepb.Envelope_Pong{Pong: &magpiepb.Pong{Time: b.Ping.GetTime()}}}
	case *magpiepb.Envelope_Send:
		return s.handleSend(c, b.Send)
	case *magpiepb.Envelope_Recall:
		if s.refusing() {
			return errEnv(0, wire.CodeUnknownCommand)
		}
		r := b.Recall
		return s.handleChange(c, c.user, r.GetConversationId(), r.GetSeq(), r.GetClientMsgId(), magpiepb.MessageKind_MESSAGE_KIND_RECALL, "")
	case *magpiepb.Envelope_Edit:
		if s.refusing() {
			return errEnv(0, wire.CodeUnknownCommand)
		}
		e := b.Edit
		return s.handleChange(c, c.user, e.GetConversationId(), e.GetSeq(), e.GetClientMsgId(), magpiepb.MessageKind_MESSAGE_KIND_EDIT, e.GetText())
	case *magpiepb.Envelope_Sync:
		return s.handleSync(c, b.Sync)
	case *magpiepb.Envelope_History:
		s.mu.Lock()
		defer s.mu.Unlock()
		cv := s.convs[b.History.GetConversationId()]
		if cv == nil {
			return errEnv(0, wire.CodeNotFound)
		}
		if !cv.has(c.user) {
			return errEnv(0, wire.CodeNotMember)
		}
		h := b.History
		limit := int(h.GetLimit())
		if limit == 0 {
			limit = wire.DefaultPageLimit
		}
		var out []*magpiepb.Message
		for _, m := range cv.msgs {
			if m.Seq > h.GetAfterSeq() && (h.GetBeforeSeq() == 0 || m.Seq < h.GetBeforeSeq()) {
				out = append(out, s.viewLocked(m, c.user))
			}
		}
		if len(out) > limit {
			if h.GetBeforeSeq() != 0 {
				out = out[len(out)-limit:]
			} else {
				out = out[:limit]
			}
		}
		return &magpiepb.Envelope{Body: &magpiepb.Envelope_HistoryResult{HistoryResult: &magpiepb.HistoryResponse{
			Messages: out, LastSeq: uint64(len(cv.msgs))}}}
	case *magpiepb.Envelope_Receipt:
		r := b.Receipt
		s.mu.Lock()
		cv := s.convs[r.GetConversationId()]
		if cv == nil {
			s.mu.Unlock()
			return errEnv(0, wire.CodeNotFound)
		}
		cur := cv.delivered
		if r.GetKind() == magpiepb.ReceiptKind_RECEIPT_KIND_READ {
			cur = cv.read
		}
		cur[c.user] = max(cur[c.user], r.GetSeq())
		push := &magpiepb.Envelope{Body: &magpiepb.Envelope_Receipt{Receipt: &magpiepb.Receipt{
			ConversationId: cv.id, Kind: r.GetKind(), Seq: cur[c.user], UserId: s.users[c.user].id, Username: c.user}}}
		members := slices.Clone(cv.members)
		s.mu.Unlock()
		for _, m := range members {
			for _, to := range s.connsOf(m, c) {
				to.send(push)
			}
		}
		return &magpiepb.Envelope{Body: &magpiepb.Envelope_Ok{Ok: &magpiepb.Ok{}}}
	case *magpiepb.Envelope_Online:
		s.mu.Lock()
		byUser := map[string]*magpiepb.OnlineUser{}
		var res magpiepb.OnlineResponse
		for oc := range s.conns {
			u := byUser[oc.user]
			if u == nil {
				u = &magpiepb.OnlineUser{UserId: s.users[oc.user].id, Username: oc.user}
				byUser[oc.user] = u
				res.Users = append(res.Users, u)
			}
			u.Devices = append(u.Devices, oc.device)
		}
		s.mu.Unlock()
		return &magpiepb.Envelope{Body: &magpiepb.Envelope_OnlineResult{OnlineResult: &res}}
	}
	return errEnv(0, wire.CodeUnknownCommand)
}

func (s *Server) handleSend(c *conn, snd *magpiepb.Send) *magpiepb.Envelope {
	if snd.GetBroadcast() {
		return s.broadcast(c, snd)
	}
	s.mu.Lock()
	s.attempts[snd.GetClientMsgId()]++
	attempt := s.attempts[snd.GetClientMsgId()]
	m := &magpiepb.Message{Sender: c.user, Text: snd.GetText(), ClientMsgId: snd.GetClientMsgId()}
	if id := snd.GetFileId(); id != "" {
		f := s.files[id]
		if f == nil || f.owner != c.user {
			s.mu.Unlock()
			return errEnv(0, wire.CodeNotFound)
		}
		m.Kind = magpiepb.MessageKind_MESSAGE_KIND_FILE
		m.File = &magpiepb.FileRef{Id: id, Name: f.name, ContentType: f.contentType, Size: int64(len(f.data))}
	}
	var cv *conv
	switch {
	case snd.GetToGroup() != "":
		cv = s.convs[snd.GetToGroup()]
		if cv == nil || !cv.group() {
			s.mu.Unlock()
			return errEnv(0, wire.CodeNotFound)
		}
		if !cv.has(c.user) {
			s.mu.Unlock()
			return errEnv(0, wire.CodeNotMember)
		}
	case s.users[snd.GetToUser()] == nil:
		s.mu.Unlock()
		return errEnv(0, wire.CodeNotFound)
	case s.blocks[snd.GetToUser()+"/"+c.user]:
		s.mu.Unlock()
		return errEnv(0, wire.CodeBlocked)
	default:
		id := convID(c.user, snd.GetToUser())
		if cv = s.convs[id]; cv == nil {
			cv = newConv(id, c.user, snd.GetToUser())
			s.convs[id] = cv
		}
	}
	return s.storeAndAck(c, cv, m, attempt)
}

func (s *Server) refusing() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.refuseChanges }

// handleChange stores user's RECALL or EDIT of message seq; c is the
// connection it came on (nil: HTTP).
func (s *Server) handleChange(c *conn, user, convID string, seq uint64, cmid string, kind magpiepb.MessageKind, text string) *magpiepb.Envelope {
	s.mu.Lock()
	s.attempts[cmid]++
	attempt := s.attempts[cmid]
	cv := s.convs[convID]
	switch {
	case cv == nil || seq == 0 || seq > uint64(len(cv.msgs)):
		s.mu.Unlock()
		return errEnv(0, wire.CodeNotFound)
	case !cv.has(user):
		s.mu.Unlock()
		return errEnv(0, wire.CodeNotMember)
	}
	orig := cv.msgs[seq-1]
	if orig.Sender != user && (kind == magpiepb.MessageKind_MESSAGE_KIND_EDIT || cv.roles[user] == "" || cv.roles[user] == "member") {
		s.mu.Unlock()
		return errEnv(0, wire.CodeForbidden)
	}
	m := &magpiepb.Message{Sender: user, ClientMsgId: cmid, Kind: kind, RefSeq: seq, Text: text}
	if _, seen := cv.byMsgID[user+"/"+cmid]; !seen {
		if kind == magpiepb.MessageKind_MESSAGE_KIND_RECALL {
			orig.Recalled, orig.Text, orig.File = true, "", nil
		} else {
			orig.Text, orig.EditedAt = text, time.Now().UnixMilli()
		}
	}
	return s.storeAndAck(c, cv, m, attempt)
}

// storeAndAck stores m in cv, pushes it to every member's connections but
// c, and answers with an ack. Called with s.mu held; unlocks it.
func (s *Server) storeAndAck(c *conn, cv *conv, m *magpiepb.Message, attempt int) *magpiepb.Envelope {
	m, dup := s.appendLocked(cv, m)
	dropAck := s.dropAck != nil && s.dropAck(m.ClientMsgId, attempt)
	ack := &magpiepb.Envelope{Body: &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{
		ConversationId: m.ConversationId, Seq: m.Seq, ClientMsgId: m.ClientMsgId, SentAt: m.SentAt, Duplicate: dup}}}
	s.mu.Unlock()
	if !dup {
		s.fanout(cv, m, c)
	}
	if dropAck && c != nil {
		c.close()
		return nil
	}
	return ack
}

// fanout pushes a stored message to every connection of every member of cv
// except the sending one, through the dropPush hook.
func (s *Server) fanout(cv *conv, m *magpiepb.Message, except *conn) {
	s.mu.Lock()
	drop := s.dropPush
	members := slices.Clone(cv.members)
	views := make(map[string]*magpiepb.Message, len(members))
	for _, name := range members {
		views[name] = s.viewLocked(m, name)
	}
	s.mu.Unlock()
	for _, name := range members {
		for _, to := range s.connsOf(name, except) {
			if drop == nil || !drop(to.user, m) {
				to.send(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: views[name]}})
			}
		}
	}
}

// broadcast sends a transient message to every connection but c.
func (s *Server) broadcast(c *conn, snd *magpiepb.Send) *magpiepb.Envelope {
	s.mu.Lock()
	m := &magpiepb.Message{SenderId: s.users[c.user].id, Sender: c.user, ClientMsgId: snd.GetClientMsgId(),
		Text: snd.GetText(), SentAt: time.Now().UnixMilli(), Transient: true}
	var all []*conn
	for oc := range s.conns {
		if oc != c {
			all = append(all, oc)
		}
	}
	s.mu.Unlock()
	for _, to := range all {
		to.send(&magpiepb.Envelope{Body: &magpiepb.Envelope_Message{Message: m}})
	}
	return &magpiepb.Envelope{Body: &magpiepb.Envelope_SendAck{SendAck: &magpiepb.SendAck{
		ClientMsgId: m.ClientMsgId, SentAt: m.SentAt}}}
}

func (s *Server) handleSync(c *conn, req *magpiepb.SyncRequest) *magpiepb.Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	cursors := map[string]uint64{}
	for _, cur := range req.GetCursors() {
		cursors[cur.GetConversationId()] = cur.GetSeq()
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = wire.DefaultPageLimit
	}
	res := &magpiepb.SyncResponse{}
	for _, id := range sortedConvs(s.convs) {
		cv := s.convs[id]
		if !cv.has(c.user) {
			continue
		}
		res.Conversations = append(res.Conversations, s.stateLocked(cv, c.user))
		for _, m := range cv.msgs {
			if m.Seq <= cursors[id] {
				continue
			}
			if len(res.Messages) == limit {
				res.More = true
				break
			}
			res.Messages = append(res.Messages, s.viewLocked(m, c.user))
		}
	}
	return &magpiepb.Envelope{Body: &magpiepb.Envelope_SyncResult{SyncResult: res}}
}

func sortedConvs(m map[string]*conv) []string {
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	return ids
}

// stateLocked is cv's ConversationState from name's point of view.
func (s *Server) stateLocked(cv *conv, name string) *magpiepb.ConversationState {
	st := &magpiepb.ConversationState{ConversationId: cv.id, LastSeq: uint64(len(cv.msgs)),
		DeliveredSeq: cv.delivered[name], ReadSeq: cv.read[name], Kind: "private",
		Unread: uint64(len(cv.msgs)) - cv.read[name], Pinned: cv.flags[name][0], Muted: cv.flags[name][1]}
	if cv.group() {
		st.Kind, st.Name = "group", cv.name
	} else {
		other := cv.other(name)
		st.Peer, st.PeerDeliveredSeq, st.PeerReadSeq = other, cv.delivered[other], cv.read[other]
	}
	return st
}
