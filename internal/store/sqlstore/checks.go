package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/magpie-im/magpie/internal/store"
)

// The per-message rules of AppendMessages beyond membership: mutes,
// blocks, friendship, and who may recall or edit what. They run inside
// the batch's transaction, after the conversation row is locked, so a
// change committed before the seq is assigned is always seen.

func isChange(k store.MessageKind) bool { return k == store.KindRecall || k == store.KindEdit }

// check returns the refusal of r, if any; an error aborts the batch.
func (b *appendBatch) check(ctx context.Context, r store.AppendRequest, st *convState, ms memberState, sentAt int64) (refusal, err error) {
	if st.kind == string(store.Group) && r.Kind != store.KindRecall {
		if ms.mutedUntil > sentAt {
			return &store.MutedError{Until: timeOf(ms.mutedUntil)}, nil
		}
		if st.mutedUntil > sentAt && ms.role != store.RoleOwner && ms.role != store.RoleAdmin {
			return &store.MutedError{Until: timeOf(st.mutedUntil), All: true}, nil
		}
	}
	if r.PeerID != 0 && r.PeerID != r.SenderID {
		if ms.blocked {
			return store.ErrBlocked, nil
		}
		if r.RequireFriend && !ms.friends {
			return store.ErrNotFriends, nil
		}
	}
	// A retry of a recall never gets here to hear "already recalled":
	// append answered it with the original.
	if !isChange(r.Kind) {
		return nil, nil
	}
	return b.checkChange(ctx, r, st, ms, sentAt)
}

// checkChange decides whether the sender may recall or edit RefSeq.
func (b *appendBatch) checkChange(ctx context.Context, r store.AppendRequest, st *convState, ms memberState, sentAt int64) (refusal, err error) {
	if err := b.insertQueued(ctx); err != nil { // RefSeq may be earlier in the batch
		return nil, err
	}
	var sender, at int64
	var kind int
	var recalled bool
	err = b.tx.QueryRowContext(ctx, `SELECT sender_id, sent_at, kind, recalled FROM messages
		WHERE conversation_id = $1 AND seq = $2`, r.ConversationID, clampSeq(r.RefSeq)).Scan(&sender, &at, &kind, &recalled)
	notFound := fmt.Errorf("message %d of %q: %w", r.RefSeq, r.ConversationID, store.ErrNotFound)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound, nil
	}
	if err != nil {
		return nil, err
	}
	if int64(r.RefSeq) <= ms.joinedSeq || recalled {
		return notFound, nil // outside the sender's window, or gone
	}
	if k := store.MessageKind(kind); k != store.KindText && k != store.KindFile {
		return fmt.Errorf("only text and file messages can be changed: %w", store.ErrForbidden), nil
	}
	own := sender == r.SenderID
	inWindow := r.RecallWindow > 0 && sentAt-at <= r.RecallWindow.Milliseconds()
	moderator := st.kind == string(store.Group) && (ms.role == store.RoleOwner || ms.role == store.RoleAdmin)
	switch {
	case own && inWindow:
		return nil, nil
	case r.Kind == store.KindRecall && moderator:
		return nil, nil
	case own:
		return store.ErrRecallLimit, nil
	}
	return fmt.Errorf("not your message: %w", store.ErrForbidden), nil
}

// applyChange changes the original of a RECALL or EDIT in the transaction
// that stores the change, so history and live delivery always agree.
func (b *appendBatch) applyChange(ctx context.Context, r store.AppendRequest, sentAt int64) error {
	var err error
	switch r.Kind {
	case store.KindRecall:
		_, err = b.tx.ExecContext(ctx, `UPDATE messages SET recalled = $1, text = '', file_id = NULL,
			file_name = '', file_type = '', file_size = 0 WHERE conversation_id = $2 AND seq = $3`,
			true, r.ConversationID, int64(r.RefSeq))
	case store.KindEdit:
		_, err = b.tx.ExecContext(ctx, `UPDATE messages SET text = $1, edited_at = $2
			WHERE conversation_id = $3 AND seq = $4`, r.Text, sentAt, r.ConversationID, int64(r.RefSeq))
	}
	if err != nil {
		return fmt.Errorf("change message %d: %w", r.RefSeq, err)
	}
	return nil
}

// pairRefusal applies the block and friendship rules to the first message
// of a private chat, before its conversation is created: a refused sender
// must not leave an empty conversation in the blocker's list.
func (b *appendBatch) pairRefusal(ctx context.Context, r store.AppendRequest) (refusal, err error) {
	if r.PeerID == r.SenderID {
		return nil, nil
	}
	var blocked, friends bool
	err = b.tx.QueryRowContext(ctx, `SELECT
		EXISTS(SELECT 1 FROM blocks WHERE user_id = $1 AND blocked_id = $2),
		EXISTS(SELECT 1 FROM friends WHERE user_id = $2 AND friend_id = $1)`, r.PeerID, r.SenderID).Scan(&blocked, &friends)
	switch {
	case err != nil:
		return nil, err
	case blocked:
		return store.ErrBlocked, nil
	case r.RequireFriend && !friends:
		return store.ErrNotFriends, nil
	}
	return nil, nil
}
