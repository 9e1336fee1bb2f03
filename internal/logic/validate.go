package logic

// The validate stage: checks of ids, bodies and file references that a
// request passes before it is queued.

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/magpie-im/magpie/internal/store"
	"github.com/magpie-im/magpie/proto/wire"
)

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
		return invalid("group id: want g_<number>")
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
		return "", invalid("client_msg_id: " + err.Error())
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
			return tooLarge(err.Error())
		}
		return invalid(err.Error())
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
		return nil, invalid("file messages are not enabled on this server")
	}
	if err := wire.ValidToken(fileID, 128); err != nil {
		return nil, invalid("file_id: " + err.Error())
	}
	meta, err := s.cfg.Files.Stat(ctx, fileID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("no such file", err)
	} else if err != nil {
		return nil, err
	}
	if meta.OwnerID != from.UserID {
		return nil, forbidden("you can only send files you uploaded", store.ErrForbidden)
	}
	return &store.FileRef{ID: meta.ID, Name: meta.Name, ContentType: meta.ContentType, Size: meta.Size}, nil
}

func fileKind(f *store.FileRef) store.MessageKind {
	if f != nil {
		return store.KindFile
	}
	return store.KindText
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
