package logic

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

// Scheduled messages (POST /v1/messages with send_at, send{send_at}): kept
// in the store until they are due, then sent by whichever logic node claims
// them first, as an ordinary send (hook, checks, fresh seq) under the
// client_msg_id they were scheduled with. That id makes the send
// idempotent, so a message claimed again after a node died halfway is still
// stored once: exactly one copy in the cluster, across restarts.
const (
	// MaxScheduledPerUser bounds one user's pending scheduled messages.
	MaxScheduledPerUser = 1000
	// DefaultScheduleHorizon is how far ahead send_at may be by default.
	DefaultScheduleHorizon = 30 * 24 * time.Hour

	scheduleTick  = time.Second      // how often a node looks for due messages
	scheduleLease = 30 * time.Second // a claim; a node that dies holding one delays its messages by this much
	scheduleBatch = 100              // claimed at once

	// RefusedKept is how long a message refused at its time stays listed
	// (status "refused") unless its sender cancels it first.
	RefusedKept = 7 * 24 * time.Hour
	// MaxRefusedReason bounds the reason kept with a refused message.
	MaxRefusedReason = 256
	purgeEvery       = time.Minute // how often a node drops refused messages past RefusedKept
)

// The status of a listed scheduled message.
const (
	ScheduledPending = "pending" // waiting for its time (or being sent)
	ScheduledRefused = "refused" // could not be sent at its time: code and reason say why
)

// ScheduledView is a pending scheduled message as the API shows it.
type ScheduledView struct {
	ID          int64  `json:"id"`
	ToUser      string `json:"to_user,omitempty"`
	ToGroup     string `json:"to_group,omitempty"`
	Text        string `json:"text"`
	FileID      string `json:"file_id,omitempty"`
	ClientMsgID string `json:"client_msg_id"`
	SendAt      int64  `json:"send_at"`
	CreatedAt   int64  `json:"created_at"`
	Status      string `json:"status"`               // ScheduledPending or ScheduledRefused
	RefusedAt   int64  `json:"refused_at,omitempty"` // refused: when, unix ms
	Code        string `json:"code,omitempty"`       // refused: the error code the send got (its name)
	Reason      string `json:"reason,omitempty"`     // refused: why
}

func scheduledView(m store.ScheduledMessage) ScheduledView {
	v := ScheduledView{ID: m.ID, ToUser: m.ToUser, ToGroup: m.ToGroup, Text: m.Text, FileID: m.FileID,
		ClientMsgID: m.ClientMsgID, SendAt: m.SendAt.UnixMilli(), CreatedAt: m.CreatedAt.UnixMilli(), Status: ScheduledPending}
	if m.Refused() {
		v.Status, v.RefusedAt, v.Code, v.Reason = ScheduledRefused, m.RefusedAt.UnixMilli(), wire.Code(m.RefusedCode).String(), m.RefusedReason
	}
	return v
}

// schedule checks a send with SendAt as far as it can be checked now (the
// body, the target, the file, membership) and stores it. The ack carries
// the scheduled id and no seq: the message gets its seq when it is sent.
func (s *Service) schedule(ctx context.Context, from Identity, req SendRequest) (Ack, error) {
	horizon := s.cfg.ScheduleHorizon
	now := s.now()
	switch {
	case horizon < 0:
		return Ack{}, forbidden("scheduled messages are turned off on this server", ErrBadRequest)
	case req.Broadcast:
		return Ack{}, invalid("a broadcast cannot be scheduled")
	case !req.SendAt.After(now):
		return Ack{}, invalid("send_at must be in the future")
	case req.SendAt.Sub(now) > horizon:
		return Ack{}, invalid("send_at is more than " + horizon.String() + " ahead (--schedule-horizon)")
	}
	if err := validBody(req.Text, req.FileID != ""); err != nil {
		return Ack{}, err
	}
	var err error
	if req.ClientMsgID, err = clientMsgID(req.ClientMsgID); err != nil {
		return Ack{}, err
	}
	m := store.ScheduledMessage{UserID: from.UserID, Text: req.Text, FileID: req.FileID, ClientMsgID: req.ClientMsgID, SendAt: req.SendAt, CreatedAt: now}
	switch {
	case req.ToGroup != "" && req.ToUser != "":
		return Ack{}, invalid("set to_user or to_group, not both")
	case req.ToGroup != "":
		if !isGroupID(req.ToGroup) {
			return Ack{}, invalid("to_group: not a group id")
		}
		w, err := s.store.MemberWindow(ctx, from.UserID, req.ToGroup)
		if err == nil && w.Left {
			err = store.ErrNotMember
		}
		if err != nil {
			return Ack{}, explain(err)
		}
		m.ToGroup = req.ToGroup
	case req.ToUser == "":
		return Ack{}, invalid("to_user is required")
	default:
		if err := wire.ValidName(req.ToUser); err != nil {
			return Ack{}, invalid("to_user: " + err.Error())
		}
		peer, err := s.userByName(ctx, from.AppID, req.ToUser)
		if errors.Is(err, store.ErrNotFound) {
			return Ack{}, notFound("no such user", err)
		} else if err != nil {
			return Ack{}, err
		}
		m.ToUser = peer.Username
	}
	if _, err := s.fileRef(ctx, from, req.FileID); err != nil {
		return Ack{}, err
	}
	pending, err := s.store.ScheduledMessages(ctx, from.UserID)
	if err != nil {
		return Ack{}, err
	}
	pending = slices.DeleteFunc(pending, store.ScheduledMessage.Refused) // refused ones do not count
	if len(pending) >= MaxScheduledPerUser {
		return Ack{}, forbidden("too many scheduled messages (at most 1000 pending)", ErrBadRequest)
	}
	stored, existing, err := s.store.Schedule(ctx, m)
	if err != nil {
		return Ack{}, err
	}
	return Ack{ClientMsgID: stored.ClientMsgID, ScheduledID: stored.ID, SendAt: stored.SendAt, Duplicate: existing}, nil
}

// ScheduledMessages lists the user's pending and refused scheduled
// messages, soonest first.
func (s *Service) ScheduledMessages(ctx context.Context, id Identity) ([]ScheduledView, error) {
	ms, err := s.store.ScheduledMessages(ctx, id.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]ScheduledView, 0, len(ms))
	for _, m := range ms {
		out = append(out, scheduledView(m))
	}
	return out, nil
}

// CancelScheduled drops one of the user's pending (or refused) scheduled
// messages.
func (s *Service) CancelScheduled(ctx context.Context, id Identity, schedID int64) error {
	err := s.store.CancelScheduled(ctx, id.UserID, schedID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return notFound("no such scheduled message (sent already?)", err)
	case errors.Is(err, store.ErrExists):
		return &Error{Kind: KindConflict, Msg: "the message is being sent", Err: err}
	}
	return err
}

// scheduleLoop sends due messages until the service stops.
func (s *Service) scheduleLoop() {
	t := time.NewTicker(scheduleTick)
	defer t.Stop()
	var purged time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		for n := scheduleBatch; n == scheduleBatch; { // a full batch: more may be due now
			n = s.sendDue()
		}
		if now := s.now(); now.Sub(purged) >= purgeEvery {
			purged = now
			s.purgeRefused(now)
		}
	}
}

// purgeRefused drops the refused messages older than RefusedKept (any
// node may: the delete is the same from each).
func (s *Service) purgeRefused(now time.Time) {
	ctx, cancel := context.WithTimeout(s.life, scheduleLease)
	defer cancel()
	if _, err := s.store.PurgeRefused(ctx, now.Add(-RefusedKept)); err != nil && !errors.Is(err, store.ErrClosed) {
		s.log.Warn("scheduled messages: purge refused", "err", err)
	}
}

// refuseScheduled marks a claimed message refused for good, says so to its
// sender's devices (a scheduled.refused notice) and logs it. Only the
// caller whose refusal the store took notifies: one notice per message,
// however many nodes tried it.
func (s *Service) refuseScheduled(ctx context.Context, m store.ScheduledMessage, username string, err error) {
	code, reason := Code(err), err.Error()
	if len(reason) > MaxRefusedReason {
		reason = strings.ToValidUTF8(reason[:MaxRefusedReason], "")
	}
	at := s.now()
	if rerr := s.store.RefuseScheduled(ctx, m.ID, at, uint32(code), reason); errors.Is(rerr, store.ErrNotFound) {
		return // cancelled, or refused by another node
	} else if rerr != nil {
		s.log.Warn("scheduled message: refuse", "id", m.ID, "err", rerr)
		return
	}
	s.log.Info("scheduled message refused", "id", m.ID, "user", username, "code", code.String(), "reason", reason)
	s.notify([]int64{m.UserID}, store.Notice{Type: store.NoticeScheduledRefused, At: at, ScheduledID: m.ID,
		Reason: reason, Code: uint32(code), ToUser: m.ToUser, ToGroup: m.ToGroup})
}

// sendDue claims and sends one batch of due messages; it returns how many
// it claimed. A message refused for good (the sender left the group, was
// removed or blocked, the conversation is gone, the app's settings or the
// hook forbid it, the sender was disabled) is marked refused, stays listed
// with why, and its sender is told (refuseScheduled); one that failed for
// now stays claimed until its lease ends and is tried again. A deleted
// sender's messages are dropped.
func (s *Service) sendDue() int {
	ctx, cancel := context.WithTimeout(s.life, scheduleLease)
	defer cancel()
	due, err := s.store.ClaimDue(ctx, s.now(), scheduleLease, scheduleBatch)
	if err != nil {
		if !errors.Is(err, store.ErrClosed) {
			s.log.Warn("scheduled messages: claim", "err", err)
		}
		return 0
	}
	for _, m := range due {
		u, err := s.store.UserByID(ctx, m.UserID)
		if err != nil {
			s.log.Warn("scheduled message: sender", "id", m.ID, "err", err)
			continue
		}
		if !u.DeletedAt.IsZero() { // nobody to tell
			s.log.Info("scheduled message dropped: sender deleted", "id", m.ID, "user", u.Username)
			if err := s.store.DoneScheduled(ctx, m.ID); err != nil {
				s.log.Warn("scheduled message: done", "id", m.ID, "err", err)
			}
			continue
		}
		if !u.DisabledAt.IsZero() { // moderated since: not sent
			s.refuseScheduled(ctx, m, u.Username, forbidden("your account was disabled", ErrBadRequest))
			continue
		}
		from := Identity{AppID: appOrDefault(u.AppID), UserID: m.UserID, Username: u.Username}
		_, err = s.wait(ctx, func(done func(Ack, error)) {
			s.SendAsync(ctx, from, SendRequest{ToUser: m.ToUser, ToGroup: m.ToGroup, Text: m.Text, FileID: m.FileID, ClientMsgID: m.ClientMsgID}, nil, done)
		})
		if err != nil && Code(err).Action() != wire.GiveUp {
			continue // retried after the lease
		}
		if err != nil {
			s.refuseScheduled(ctx, m, u.Username, err)
			continue
		}
		if err := s.store.DoneScheduled(ctx, m.ID); err != nil {
			s.log.Warn("scheduled message: done", "id", m.ID, "err", err)
		}
	}
	return len(due)
}
