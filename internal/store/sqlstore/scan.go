package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/magpie-im/magpie/internal/store"
)

// msgCols selects a message as m joined to its sender as su; msgRow scans
// it. Every column is nullable so the same scanner serves LEFT JOINs.
const msgCols = `m.seq, m.sender_id, su.username, m.client_msg_id, m.text, m.sent_at,
	m.kind, m.ref_seq, m.file_id, m.file_name, m.file_type, m.file_size, m.event, m.edited_at, m.recalled`

type msgRow struct {
	seq, sender, sentAt, kind, ref, size, edited sql.NullInt64
	name, cmid, text, fileID, fileName, fileType sql.NullString
	event                                        sql.NullString
	recalled                                     sql.NullBool
}

func (x *msgRow) dests() []any {
	return []any{&x.seq, &x.sender, &x.name, &x.cmid, &x.text, &x.sentAt,
		&x.kind, &x.ref, &x.fileID, &x.fileName, &x.fileType, &x.size, &x.event, &x.edited, &x.recalled}
}

// message returns the scanned message, or nil if the LEFT JOIN found none.
func (x *msgRow) message(conv string) (*store.Message, error) {
	if !x.seq.Valid {
		return nil, nil
	}
	m := &store.Message{
		ConversationID: conv,
		Seq:            uint64(x.seq.Int64),
		SenderID:       x.sender.Int64,
		Sender:         x.name.String,
		ClientMsgID:    x.cmid.String,
		Text:           x.text.String,
		SentAt:         timeOf(x.sentAt.Int64),
		Kind:           store.MessageKind(x.kind.Int64),
		RefSeq:         uint64(x.ref.Int64),
		EditedAt:       timeOf(x.edited.Int64),
		Recalled:       x.recalled.Bool,
	}
	if x.fileID.Valid {
		m.File = &store.FileRef{ID: x.fileID.String, Name: x.fileName.String, ContentType: x.fileType.String, Size: x.size.Int64}
	}
	if x.event.Valid {
		m.Event = new(store.Event)
		if err := json.Unmarshal([]byte(x.event.String), m.Event); err != nil {
			return nil, fmt.Errorf("message %d of %q: bad event: %w", m.Seq, conv, err)
		}
	}
	return m, nil
}
