package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/magpie-im/magpie/internal/searchtext"
	"github.com/magpie-im/magpie/internal/store"
)

// Search finds messages by the trigram indexes of migration 7: FTS5 with
// the trigram tokenizer on SQLite (ranked by bm25), a pg_trgm GIN index on
// PostgreSQL (ranked by how often the terms occur). Both match substrings,
// so they find words of scripts written without spaces (Chinese, Japanese,
// Thai). A term shorter than three characters is beyond a trigram index:
// such terms only filter, and a query of nothing else scans the caller's
// own conversations, newest first.
func (s *Store) Search(ctx context.Context, q store.SearchQuery) ([]store.Message, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if len(q.Terms) == 0 || q.Limit <= 0 {
		return nil, nil
	}
	args := []any{q.UserID}
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	var from, order string
	where := []string{
		`m.kind IN (0, 1)`, `NOT m.recalled`,
		`m.conversation_id IN (SELECT conversation_id FROM members WHERE user_id = $1)`,
		visibleToUser,
	}
	if q.ConversationID != "" {
		where = append(where, `m.conversation_id = `+arg(q.ConversationID))
	}
	if s.d == dialectPostgres {
		from = `messages m`
		var hits []string
		for _, t := range q.Terms {
			where = append(where, `m.text ILIKE `+arg(likePattern(t)))
			p := arg(strings.ToLower(t))
			hits = append(hits, fmt.Sprintf(`(length(m.text) - length(replace(lower(m.text), %s, ''))) / length(%s)`, p, p))
		}
		order = `(` + strings.Join(hits, " + ") + `) DESC, m.sent_at DESC`
	} else {
		var indexed []string
		for _, t := range q.Terms {
			if searchtext.Indexed(t) {
				indexed = append(indexed, `"`+strings.ReplaceAll(t, `"`, `""`)+`"`)
				continue
			}
			where = append(where, `m.text LIKE `+arg(likePattern(t))+` ESCAPE '\'`)
		}
		if len(indexed) > 0 {
			from = `messages_fts JOIN messages m ON m.rowid = messages_fts.rowid`
			where = append(where, `messages_fts MATCH `+arg(strings.Join(indexed, " AND ")))
			order = `bm25(messages_fts), m.sent_at DESC`
		} else {
			from = `messages m`
			order = `m.sent_at DESC`
		}
	}
	query := `SELECT m.conversation_id, ` + msgCols + ` FROM ` + from + ` JOIN users su ON su.id = m.sender_id
		WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY ` + order + `, m.conversation_id, m.seq LIMIT ` + arg(q.Limit) + ` OFFSET ` + arg(q.Offset)
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrapErr("search", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var conv string
		var x msgRow
		if err := rows.Scan(append([]any{&conv}, x.dests()...)...); err != nil {
			return nil, wrapErr("search", err)
		}
		m, err := x.message(conv)
		if err != nil {
			return nil, wrapErr("search", err)
		}
		out = append(out, *m)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("search", err)
	}
	return out, nil
}

// visibleToUser: m lies in one of $1's membership windows, the current
// or last one (members) or an earlier stay (member_windows), and after
// where $1 cleared the history, as Messages reads them.
const visibleToUser = `(EXISTS (SELECT 1 FROM members me WHERE me.conversation_id = m.conversation_id AND me.user_id = $1
		AND m.seq > me.joined_seq AND (me.left_seq IS NULL OR m.seq <= me.left_seq))
	OR EXISTS (SELECT 1 FROM member_windows w WHERE w.conversation_id = m.conversation_id AND w.user_id = $1
		AND m.seq > w.from_seq AND m.seq <= w.to_seq))
	AND NOT EXISTS (SELECT 1 FROM members cl WHERE cl.conversation_id = m.conversation_id AND cl.user_id = $1
		AND m.seq <= cl.cleared_seq)`

// On SQLite the messages a batch inserts are indexed by one statement
// after them (insertQueued), in the batch's transaction, not by a trigger
// per row as migration 7 had it: FTS5 writes its pending rows as a new
// segment at every statement savepoint, and a trigger makes each row's
// INSERT open one, so the trigger wrote a segment (and, every 16, a
// merge) per message. Indexed are the rows from the batch's first on
// (its rowid less one is the argument): SQLite gives a new row the highest
// rowid plus one, and this process's write connection holds the write
// lock. Only AppendMessages inserts text and file messages; events and
// recalls have no text.
const indexMessagesAfter = `INSERT INTO messages_fts(rowid, text) SELECT rowid, text FROM messages
	WHERE rowid > $1 AND kind IN (0, 1) AND text <> '' AND NOT recalled`

// likePattern matches term anywhere, its wildcards escaped.
func likePattern(term string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(term) + "%"
}
