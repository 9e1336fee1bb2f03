package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// The per-message rules of AppendMessages beyond membership (mutes,
// blocks, friendship, who may recall or edit what) are decided by package
// rules. Here the batch loads the state they need inside its transaction,
// after the conversation row is locked, so a change committed before the
// seq is assigned is always seen.

// check returns the refusal of r, if any; an error aborts the batch.
func (b *appendBatch) check(ctx context.Context, r store.AppendRequest, st *convState, ms memberState, sentAt int64) (refusal, err error) {
	if ref := rules.MaySend(rules.Send{
		Kind: r.Kind, Group: st.kind == string(store.Group), Private: r.PeerID != 0 && r.PeerID != r.SenderID,
		Sender:          rules.Sender{Role: ms.role, MutedUntil: timeOf(ms.mutedUntil), Blocked: ms.blocked, Friends: ms.friends},
		GroupMutedUntil: timeOf(st.mutedUntil), RequireFriend: r.RequireFriend, At: timeOf(sentAt),
	}); ref != nil {
		return ref, nil
	}
	// A retry of a recall never gets here to hear "already recalled":
	// append answered it with the original.
	if !rules.IsChange(r.Kind) {
		return nil, nil
	}
	return b.checkChange(ctx, r, st, ms, sentAt)
}

// checkChange loads the message a recall or edit refers to and asks the
// rules whether the sender may change it.
func (b *appendBatch) checkChange(ctx context.Context, r store.AppendRequest, st *convState, ms memberState, sentAt int64) (refusal, err error) {
	if err := b.insertQueued(ctx); err != nil { // RefSeq may be earlier in the batch
		return nil, err
	}
	o := rules.Original{Seq: r.RefSeq}
	var at int64
	var kind int
	err = b.tx.QueryRowContext(ctx, `SELECT sender_id, sent_at, kind, recalled FROM messages
		WHERE conversation_id = $1 AND seq = $2`, r.ConversationID, clampSeq(r.RefSeq)).Scan(&o.SenderID, &at, &kind, &o.Recalled)
	switch {
	case err == nil:
		o.Found, o.SentAt, o.Kind = true, timeOf(at), store.MessageKind(kind)
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	var role store.Role
	if st.kind == string(store.Group) {
		role = ms.role
	}
	return rules.Err(rules.MayChange(rules.Change{Kind: r.Kind, SenderID: r.SenderID, Role: role,
		JoinedSeq: uint64(max(ms.joinedSeq, 0)), Window: r.RecallWindow, At: timeOf(sentAt), Original: o})), nil
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
		if err == nil {
			// Each edit is a message of its own carrying the new text:
			// left alone, history and sync would still show what the
			// recall took back. Every edit is in the table by now
			// (checkChange inserted the batch's queued messages).
			_, err = b.tx.ExecContext(ctx, `UPDATE messages SET text = '' WHERE conversation_id = $1
				AND ref_seq = $2 AND kind = $3`, r.ConversationID, int64(r.RefSeq), int(store.KindEdit))
		}
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
	if err != nil {
		return nil, err
	}
	return rules.Err(rules.MayStartPrivate(blocked, friends, r.RequireFriend)), nil
}
