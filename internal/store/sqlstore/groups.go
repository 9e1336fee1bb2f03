package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// Groups are conversations of kind 'group'. Every membership or settings
// change locks the conversation row first, like AppendMessages does, so
// changes and sends in one group are serialized and each change's event
// gets the next seq in the same transaction.

// querier is what both *sql.DB and *sql.Tx offer for reads.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *Store) CreateGroup(ctx context.Context, g store.NewGroup) (store.GroupInfo, store.Message, error) {
	if err := s.check(); err != nil {
		return store.GroupInfo{}, store.Message{}, err
	}
	others := slices.Clone(g.MemberIDs)
	slices.Sort(others)
	others = slices.Compact(others)
	others = slices.DeleteFunc(others, func(id int64) bool { return id == g.OwnerID })
	if r := rules.Fits(0, 1+len(others), effectiveMax(g.MaxSize, g.MaxMembers)); r != nil {
		return store.GroupInfo{}, store.Message{}, r
	}
	if g.JoinPolicy == "" {
		g.JoinPolicy = store.JoinInvite
	}
	at := millis(g.At)
	if at == 0 {
		at = nowMillis()
	}
	var info store.GroupInfo
	var ev store.Message
	err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		all := append([]int64{g.OwnerID}, others...)
		if n, err := countUsers(ctx, tx, all); err != nil {
			return err
		} else if n != len(all) {
			return fmt.Errorf("group members: %w", store.ErrNotFound)
		}
		members := make([]store.ImportMember, len(all))
		for i, uid := range all {
			members[i] = store.ImportMember{UserID: uid, Role: store.RoleMember}
		}
		members[0].Role = store.RoleOwner
		id, err := insertGroup(ctx, tx, g.Name, g.JoinPolicy, members, at)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET intro = $1, notice = $2, avatar_url = $3, max_members = $4
			WHERE id = $5`, g.Intro, g.Notice, g.AvatarURL, g.MaxMembers, id); err != nil {
			return err
		}
		if err := touchGroup(ctx, tx, id, nil); err != nil {
			return err
		}
		if ev, err = appendEvent(ctx, tx, id, 0, g.OwnerID, g.Event, at); err != nil {
			return err
		}
		info, err = loadGroup(ctx, tx, id, true)
		return err
	})
	if err != nil {
		return store.GroupInfo{}, store.Message{}, wrapErr("create group", err)
	}
	return info, ev, nil
}

// insertGroup makes a group conversation with its members (the owner
// among them) and returns its id. Everyone's window starts before the
// "created" event (seq 1) the caller appends next, and everyone's cursors
// are on it: nothing unread yet.
func insertGroup(ctx context.Context, tx *sql.Tx, name string, policy store.JoinPolicy, members []store.ImportMember, at int64) (string, error) {
	var n int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO group_ids(created_at) VALUES ($1) RETURNING id`, at).Scan(&n); err != nil {
		return "", err
	}
	id := "g_" + strconv.FormatInt(n, 10)
	if _, err := tx.ExecContext(ctx, `INSERT INTO conversations(id, kind, last_seq, created_at, updated_at, name, join_policy)
		VALUES ($1, $2, 0, $3, $3, $4, $5)`, id, string(store.Group), at, name, string(policy)); err != nil {
		return "", err
	}
	// Many rows a statement: an imported group may have thousands.
	for chunk := range slices.Chunk(members, 200) {
		var b strings.Builder
		args := []any{id, at}
		for i, m := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "($1, $%d, 1, 1, 0, $%d, $2)", len(args)+1, len(args)+2)
			args = append(args, m.UserID, string(m.Role))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO members(conversation_id, user_id, delivered_seq, read_seq, joined_seq, role, joined_at)
			VALUES `+b.String(), args...); err != nil {
			return "", err
		}
	}
	return id, nil
}

// wrapErr leaves store sentinels recognizable and marks the rest as ours.
func wrapErr(what string, err error) error {
	return fmt.Errorf("sqlstore: %s: %w", what, err)
}

func countUsers(ctx context.Context, q querier, ids []int64) (int, error) {
	n := 0
	for chunk := range slices.Chunk(ids, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		var c int
		if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id IN (`+placeholders(1, len(chunk))+`)`, args...).Scan(&c); err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// appendEvent stores an EVENT message as seq lastSeq+1 of a conversation
// whose row the caller has locked, and moves the actor's cursors to it.
func appendEvent(ctx context.Context, tx *sql.Tx, convID string, lastSeq, actor int64, ev store.Event, at int64) (store.Message, error) {
	body, err := json.Marshal(ev)
	if err != nil {
		return store.Message{}, err
	}
	seq := lastSeq + 1
	if _, err := tx.ExecContext(ctx, `INSERT INTO messages(conversation_id, seq, sender_id, text, sent_at, kind, event)
		VALUES ($1, $2, $3, '', $4, $5, $6)`, convID, seq, actor, at, int(store.KindEvent), string(body)); err != nil {
		return store.Message{}, fmt.Errorf("store event: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE conversations SET last_seq = $1, updated_at = $2 WHERE id = $3`, seq, at, convID); err != nil {
		return store.Message{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE members SET delivered_seq = $1, read_seq = $1
		WHERE conversation_id = $2 AND user_id = $3 AND left_seq IS NULL`, seq, convID, actor); err != nil {
		return store.Message{}, err
	}
	return store.Message{ConversationID: convID, Seq: uint64(seq), SenderID: actor, Sender: ev.Actor,
		SentAt: timeOf(at), Kind: store.KindEvent, Event: &ev}, nil
}

func (s *Store) Group(ctx context.Context, groupID string) (store.GroupInfo, error) {
	if err := s.check(); err != nil {
		return store.GroupInfo{}, err
	}
	g, err := loadGroup(ctx, s.read, groupID, true)
	if err != nil {
		return store.GroupInfo{}, wrapErr("group", err)
	}
	return g, nil
}

// loadGroup reads a group, dissolved or not; ErrNotFound if there is none.
func loadGroup(ctx context.Context, q querier, id string, withMembers bool) (store.GroupInfo, error) {
	g := store.GroupInfo{ID: id}
	var policy string
	var muted, created, dissolved int64
	err := q.QueryRowContext(ctx, `SELECT name, join_policy, muted_until, created_at, dissolved_at,
		intro, notice, avatar_url, max_members, version
		FROM conversations WHERE id = $1 AND kind = $2`, id, string(store.Group)).Scan(&g.Name, &policy, &muted, &created, &dissolved,
		&g.Intro, &g.Notice, &g.AvatarURL, &g.MaxMembers, &g.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return g, fmt.Errorf("group %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return g, err
	}
	g.JoinPolicy, g.MutedUntil, g.CreatedAt, g.Dissolved = store.JoinPolicy(policy), timeOf(muted), timeOf(created), dissolved != 0
	rows, err := q.QueryContext(ctx, `SELECT m.user_id, u.username, m.role, m.muted_until, m.joined_at
		FROM members m JOIN users u ON u.id = m.user_id
		WHERE m.conversation_id = $1 AND m.left_seq IS NULL ORDER BY m.user_id`, id)
	if err != nil {
		return g, err
	}
	defer rows.Close()
	members := []store.GroupMember{}
	for rows.Next() {
		var m store.GroupMember
		var role string
		var mu, joined int64
		if err := rows.Scan(&m.UserID, &m.Username, &role, &mu, &joined); err != nil {
			return g, err
		}
		m.Role, m.MutedUntil, m.JoinedAt = store.Role(role), timeOf(mu), timeOf(joined)
		if m.Role == store.RoleOwner {
			g.OwnerID, g.Owner = m.UserID, m.Username
		}
		members = append(members, m)
	}
	if err := rows.Err(); err != nil {
		return g, err
	}
	g.MemberCount = len(members)
	if withMembers {
		g.Members = members
	}
	return g, nil
}

func (s *Store) UserGroups(ctx context.Context, userID int64) ([]store.GroupInfo, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+groupListColumns+`
		FROM members me
		JOIN conversations c ON c.id = me.conversation_id
		LEFT JOIN members o ON o.conversation_id = c.id AND o.role = 'owner' AND o.left_seq IS NULL
		LEFT JOIN users ou ON ou.id = o.user_id
		WHERE me.user_id = $1 AND me.left_seq IS NULL AND c.kind = 'group'
		ORDER BY c.created_at, c.id`, userID)
	if err != nil {
		return nil, wrapErr("user groups", err)
	}
	defer rows.Close()
	out := []store.GroupInfo{}
	for rows.Next() {
		g, err := scanGroupListRow(rows)
		if err != nil {
			return nil, wrapErr("user groups", err)
		}
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("user groups", err)
	}
	return out, nil
}

func (s *Store) MemberWindow(ctx context.Context, userID int64, conversationID string) (store.Window, error) {
	if err := s.check(); err != nil {
		return store.Window{}, err
	}
	var joined int64
	var left sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT joined_seq, left_seq FROM members WHERE conversation_id = $1 AND user_id = $2`,
		conversationID, userID).Scan(&joined, &left)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Window{}, fmt.Errorf("conversation %q: %w", conversationID, store.ErrNotMember)
	}
	if err != nil {
		return store.Window{}, wrapErr("member window", err)
	}
	return store.Window{JoinedSeq: uint64(joined), LeftSeq: uint64(left.Int64), Left: left.Valid}, nil
}

// MessageReads counts only members who could have read seq: those who
// joined before it and are still members, the sender left out.
func (s *Store) MessageReads(ctx context.Context, userID int64, conversationID string, seq uint64) (store.Reads, error) {
	w, err := s.MemberWindow(ctx, userID, conversationID)
	if err != nil {
		return store.Reads{}, err
	}
	if seq <= w.JoinedSeq || (w.Left && seq > w.LeftSeq) {
		return store.Reads{}, fmt.Errorf("seq %d of %q is outside your membership: %w", seq, conversationID, store.ErrNotMember)
	}
	var sender int64
	err = s.read.QueryRowContext(ctx, `SELECT sender_id FROM messages WHERE conversation_id = $1 AND seq = $2`,
		conversationID, clampSeq(seq)).Scan(&sender)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Reads{}, fmt.Errorf("message %d of %q: %w", seq, conversationID, store.ErrNotFound)
	}
	if err != nil {
		return store.Reads{}, wrapErr("message reads", err)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT user_id, read_seq FROM members
		WHERE conversation_id = $1 AND left_seq IS NULL AND joined_seq < $2 AND user_id <> $3
		ORDER BY user_id`, conversationID, int64(seq), sender)
	if err != nil {
		return store.Reads{}, wrapErr("message reads", err)
	}
	defer rows.Close()
	r := store.Reads{Seq: seq, Readers: []int64{}}
	for rows.Next() {
		var uid, read int64
		if err := rows.Scan(&uid, &read); err != nil {
			return store.Reads{}, wrapErr("message reads", err)
		}
		r.MemberCount++
		if uint64(read) >= seq {
			r.Readers = append(r.Readers, uid)
		}
	}
	if err := rows.Err(); err != nil {
		return store.Reads{}, wrapErr("message reads", err)
	}
	return r, nil
}

// narrowEvent keeps the parts of an add or join event about users who
// really joined; Usernames runs parallel to UserIDs when set.
func narrowEvent(ev store.Event, joined []int64) store.Event {
	names := make(map[int64]string, len(ev.UserIDs))
	for i, id := range ev.UserIDs {
		if i < len(ev.Usernames) {
			names[id] = ev.Usernames[i]
		}
	}
	ev.UserIDs, ev.Usernames = joined, nil
	for _, id := range joined {
		if n, ok := names[id]; ok {
			ev.Usernames = append(ev.Usernames, n)
		}
	}
	if len(ev.Usernames) != len(ev.UserIDs) {
		ev.Usernames = nil
	}
	return ev
}

// groupIDArg checks the shape of a group id before it reaches SQL.
func groupIDArg(id string) bool {
	n, ok := strings.CutPrefix(id, "g_")
	_, err := strconv.ParseUint(n, 10, 63)
	return ok && err == nil
}
