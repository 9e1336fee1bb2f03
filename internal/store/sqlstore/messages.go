package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/magpie-im/magpie/internal/rules"
	"github.com/magpie-im/magpie/internal/store"
)

// AppendMessages is the group commit: the whole batch is one transaction.
//
// Seqs are assigned in memory from each conversation's last_seq, read once
// at the start, and written back once at the end. That is safe because the
// transaction holds the write lock on those rows for its whole life: the
// single SQLite writer, or SELECT ... FOR UPDATE on PostgreSQL, taken in id
// order so that two nodes locking overlapping batches cannot deadlock.
// On PostgreSQL a batch first tries the path of pgpipeline.go, two round
// trips and no lock held across one, and comes here when that cannot
// decide it.
func (s *Store) AppendMessages(ctx context.Context, reqs []store.AppendRequest) ([]store.AppendResult, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if len(reqs) == 0 {
		return nil, nil
	}
	results, _, err := s.appendAndMove(ctx, reqs, nil)
	return results, err
}

// appendAndMove is AppendMessages followed, in its transaction, by
// MoveCursors of moves (see AppendAndMove).
func (s *Store) appendAndMove(ctx context.Context, reqs []store.AppendRequest, moves []store.CursorMove) ([]store.AppendResult, []store.CursorResult, error) {
	if s.d == dialectPostgres && len(moves) == 0 {
		if results, ok, err := s.appendPipelined(ctx, reqs); ok || err != nil {
			return results, nil, err
		}
	}
	var results []store.AppendResult
	var moved []store.CursorResult
	var unprepared, locked []string
	trust := s.hc != nil // the hot cache, if the batch qualifies
	var kept func()
	attempt := func(tx *sql.Tx) error {
		ctx := s.inTx(ctx)
		// A retry starts from scratch: nothing of a failed attempt is kept.
		b := s.newAppendBatch()
		b.tx = tx
		b.member = tx.StmtContext(ctx, s.hot.member)
		b.findDup = tx.StmtContext(ctx, s.hot.findDup)
		var start hotStamp
		if s.hc != nil {
			var err error
			if start, err = s.hc.read(ctx, tx); err != nil {
				return err
			}
			b.unchecked = trust && s.hc.fill(b, reqs, start)
		}
		var err error
		results, err = b.run(ctx, reqs)
		unprepared = append(unprepared, b.unprepared...)
		locked = slices.Collect(maps.Keys(b.convs))
		if err == nil && len(moves) > 0 {
			moved, err = s.moveAll(ctx, tx, moves)
		}
		if err != nil || s.hc == nil {
			return err
		}
		end, err := s.hc.readEndOfAppend(ctx, tx, start)
		kept = func() { s.hc.keep(b, reqs, start, end) }
		return err
	}
	err := s.inWriteTx(ctx, attempt)
	if s.staleHot(trust, err) {
		trust = false
		err = s.inWriteTx(ctx, attempt)
	}
	s.reads.prepare(ctx, s.write, unprepared)
	if err != nil {
		if s.hc != nil {
			s.hc.drop()
		}
		return nil, nil, fmt.Errorf("sqlstore: append messages: %w", err)
	}
	if kept != nil {
		kept()
	}
	// The locking path moved these conversations' last seq: the
	// pipelined path's cache of them would only fail its next write.
	s.pipe.cache.drop(locked)
	s.known.add(locked)
	return results, moved, nil
}

// newAppendBatch is an empty batch of s, outside any transaction: the
// locking path binds it to its transaction, the pipelined path
// (pgpipeline.go) runs its statements on a pgx connection instead.
func (s *Store) newAppendBatch() *appendBatch {
	return &appendBatch{
		d:         s.d,
		now:       nowMillis(),
		convs:     make(map[string]*convState),
		members:   make(map[memberKey]memberState),
		users:     make(map[int64]bool),
		stored:    make(map[dupKey]bool),
		seen:      make(map[dupKey]store.Message),
		senderSeq: make(map[memberKey]int64),
		hot:       &s.hot,
		reads:     &s.reads,
		known:     &s.known,
	}
}

// knownConvs remembers conversations known to exist. Rows of conversations
// are never deleted, so an entry never goes stale, on any node; a batch
// whose private conversations are all known skips reading which exist.
type knownConvs struct {
	mu sync.RWMutex
	m  map[string]struct{}
}

// maxKnownConvs bounds the set; past it, it starts again empty.
const maxKnownConvs = 1 << 20

func (k *knownConvs) add(ids []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.m == nil || len(k.m)+len(ids) > maxKnownConvs {
		k.m = make(map[string]struct{}, len(ids))
	}
	for _, id := range ids {
		k.m[id] = struct{}{}
	}
}

func (k *knownConvs) all(ids []string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, id := range ids {
		if _, ok := k.m[id]; !ok {
			return false
		}
	}
	return true
}

type convState struct {
	lastSeq    int64
	updatedAt  int64
	kind       string
	mutedUntil int64 // groups: everyone but owner and admins
	dirty      bool
}

// memberState is what the send path needs to know about one sender in one
// conversation. blocked and friends are about the peer of a private chat.
type memberState struct {
	current    bool // a member who has not left
	role       store.Role
	mutedUntil int64
	joinedSeq  int64
	blocked    bool // the peer blocked the sender
	friends    bool
}

type memberKey struct {
	conv string
	user int64
}

type dupKey struct {
	sender int64
	cmid   string
}

// appendBatch is the state of one attempt at one batch. Not safe for
// concurrent use; it lives inside one transaction.
type appendBatch struct {
	d         dialect
	tx        *sql.Tx
	now       int64
	convs     map[string]*convState // locked for this transaction
	members   map[memberKey]memberState
	users     map[int64]bool  // whether the user exists
	stored    map[dupKey]bool // the batch's client ids committed before this attempt
	seen      map[dupKey]store.Message
	senderSeq map[memberKey]int64 // the highest seq each sender appended
	queued    [][]any             // message rows not yet inserted

	member, findDup *sql.Stmt
	hot             *hotStmts // prepared on the write DB; bind with tx.StmtContext
	known           *knownConvs
	reads           *stmtCache
	unprepared      []string // reads that reads lacked
	unchecked       bool     // filled from the hot cache: loadStored did not run (see lateDup)
}

func (b *appendBatch) run(ctx context.Context, reqs []store.AppendRequest) ([]store.AppendResult, error) {
	ids := make([]string, 0, 4)
	for _, r := range reqs {
		ids = append(ids, r.ConversationID)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if !b.unchecked {
		if err := b.load(ctx, reqs, ids); err != nil {
			return nil, err
		}
	}
	results := make([]store.AppendResult, len(reqs))
	for i, r := range reqs {
		res, err := b.append(ctx, r)
		if err != nil {
			return nil, err
		}
		results[i] = res
	}
	return results, b.flush(ctx)
}

// load reads what the batch needs before its first append, unless the
// hot cache gave it: the client ids stored before, the conversations
// (created first where the batch opens them) and the senders' memberships.
func (b *appendBatch) load(ctx context.Context, reqs []store.AppendRequest, ids []string) error {
	if err := b.loadStored(ctx, reqs); err != nil {
		return err
	}
	if err := b.createPrivates(ctx, reqs, ids); err != nil {
		return err
	}
	if err := b.lockConversations(ctx, ids); err != nil {
		return err
	}
	return b.loadMembers(ctx, reqs)
}

// createPrivates creates, in id order, the private conversations the batch
// opens. Creating them before locking anything, and both in id order, is
// what keeps concurrent batches free of deadlocks: an insert waits on a
// concurrent insert of the same key just as a lock would, and rows another
// transaction created but has not committed are invisible to our locking
// read, so no transaction can wait on a row out of order.
func (b *appendBatch) createPrivates(ctx context.Context, reqs []store.AppendRequest, ids []string) error {
	var candidates []string
	for _, r := range reqs {
		if r.PeerID != 0 {
			candidates = append(candidates, r.ConversationID)
		}
	}
	if len(candidates) == 0 || b.known.all(candidates) {
		return nil
	}
	existing := make(map[string]bool)
	err := b.queryIDs(ctx, b.d.pick(`SELECT id FROM conversations WHERE id IN (SELECT id FROM k)`, pgExistingSQL), ids, func(rows *sql.Rows) error {
		var id string
		err := rows.Scan(&id)
		existing[id] = true
		return err
	})
	if err != nil {
		return err
	}
	create := make(map[string]store.AppendRequest)
	for _, r := range reqs {
		if r.PeerID == 0 || existing[r.ConversationID] || r.ConversationID != store.PrivateConversationID(r.SenderID, r.PeerID) {
			continue
		}
		if _, ok := create[r.ConversationID]; ok {
			continue
		}
		// A retry of a message stored elsewhere must not leave an empty
		// conversation behind; append answers it with the original.
		if b.stored[dupKey{r.SenderID, r.ClientMsgID}] {
			continue
		}
		ok, err := b.usersExist(ctx, r.SenderID, r.PeerID)
		if err != nil {
			return err
		}
		if !ok || rules.IsChange(r.Kind) {
			continue
		}
		refusal, err := b.pairRefusal(ctx, r)
		if err != nil {
			return err
		}
		if refusal == nil {
			create[r.ConversationID] = r
		}
	}
	for _, id := range slices.Sorted(maps.Keys(create)) {
		if err := b.createPrivate(ctx, create[id]); err != nil {
			return err
		}
	}
	return nil
}

// lockConversations reads (and on PostgreSQL locks) every existing
// conversation of the batch, in id order.
func (b *appendBatch) lockConversations(ctx context.Context, ids []string) error {
	return b.queryIDs(ctx, b.d.pick(`SELECT id, last_seq, updated_at, kind, muted_until FROM conversations
		WHERE id IN (SELECT id FROM k)`, pgLockConversationsSQL), ids, func(rows *sql.Rows) error {
		var id string
		st := &convState{}
		err := rows.Scan(&id, &st.lastSeq, &st.updatedAt, &st.kind, &st.mutedUntil)
		b.convs[id] = st
		return err
	})
}

// loadConversation locks a conversation that did not exist when the batch
// locked the others: another node created it since. Rare, and out of
// order, so it may deadlock; the retry then finds it in order.
func (b *appendBatch) loadConversation(ctx context.Context, id string) (*convState, error) {
	st := &convState{}
	err := b.tx.QueryRowContext(ctx, `SELECT last_seq, updated_at, kind, muted_until FROM conversations WHERE id = $1`+b.d.forUpdate(), id).
		Scan(&st.lastSeq, &st.updatedAt, &st.kind, &st.mutedUntil)
	if err != nil {
		return nil, fmt.Errorf("load conversation %q: %w", id, err)
	}
	b.convs[id] = st
	return st, nil
}

// append stores one request. A per-message failure is returned in the
// result; an error aborts the whole batch.
func (b *appendBatch) append(ctx context.Context, r store.AppendRequest) (store.AppendResult, error) {
	// A retry is answered with the original wherever it was sent, even if
	// the sender may no longer write there (left, muted, blocked since).
	key := dupKey{r.SenderID, r.ClientMsgID}
	if m, found, err := b.lookupDup(ctx, key); err != nil || found {
		return store.AppendResult{Message: m, Duplicate: found}, err
	}
	mk := memberKey{r.ConversationID, r.SenderID}
	ms, err := b.memberState(ctx, mk, r.PeerID)
	if err != nil {
		return store.AppendResult{}, err
	}
	if !ms.current {
		if m, found, err := b.lateDup(ctx, key); err != nil || found {
			return store.AppendResult{Message: m, Duplicate: found}, err
		}
		if r.PeerID == 0 || r.ConversationID != store.PrivateConversationID(r.SenderID, r.PeerID) || rules.IsChange(r.Kind) {
			return store.AppendResult{Err: fmt.Errorf("conversation %q: %w", r.ConversationID, store.ErrNotMember)}, nil
		}
		exist, err := b.usersExist(ctx, r.SenderID, r.PeerID)
		if err != nil {
			return store.AppendResult{}, err
		}
		if !exist {
			return store.AppendResult{Err: fmt.Errorf("user %d or %d: %w", r.SenderID, r.PeerID, store.ErrNotFound)}, nil
		}
		if refusal, err := b.pairRefusal(ctx, r); err != nil || refusal != nil {
			return store.AppendResult{Err: refusal}, err
		}
		if err := b.createPrivate(ctx, r); err != nil {
			return store.AppendResult{}, err
		}
		// Both memberships may be new: read them again when needed.
		delete(b.members, mk)
		delete(b.members, memberKey{r.ConversationID, r.PeerID})
		if ms, err = b.memberState(ctx, mk, r.PeerID); err != nil {
			return store.AppendResult{}, err
		}
	}

	st := b.convs[r.ConversationID]
	if st == nil {
		if st, err = b.loadConversation(ctx, r.ConversationID); err != nil {
			return store.AppendResult{}, err
		}
	}
	sentAt := millis(r.SentAt)
	if sentAt == 0 {
		sentAt = b.now
	}
	refusal, err := b.check(ctx, r, st, ms, sentAt)
	if err == nil && refusal != nil {
		if m, found, err := b.lateDup(ctx, key); err != nil || found {
			return store.AppendResult{Message: m, Duplicate: found}, err
		}
	}
	if err != nil || refusal != nil {
		return store.AppendResult{Err: refusal}, err
	}
	seq := st.lastSeq + 1
	b.queue(r, seq, sentAt)
	if err := b.applyChange(ctx, r, sentAt); err != nil {
		return store.AppendResult{}, err
	}
	st.lastSeq = seq
	st.dirty = true
	st.updatedAt = sentAt // the conversation sorts by its latest message
	b.senderSeq[mk] = seq
	m := store.Message{
		ConversationID: r.ConversationID,
		Seq:            uint64(seq),
		SenderID:       r.SenderID,
		ClientMsgID:    r.ClientMsgID,
		Text:           r.Text,
		SentAt:         timeOf(sentAt),
		Kind:           r.Kind,
		RefSeq:         r.RefSeq,
		File:           r.File,
	}
	if r.ClientMsgID != "" {
		b.seen[key] = m
	}
	return store.AppendResult{Message: m}, nil
}

// memberState reads (once per batch) the sender's membership; peer is the
// other user of a private chat, or 0. The cache key needs no peer: a
// private conversation id names its pair.
func (b *appendBatch) memberState(ctx context.Context, mk memberKey, peer int64) (memberState, error) {
	if ms, known := b.members[mk]; known {
		return ms, nil
	}
	ms, err := scanMember(b.member.QueryRowContext(ctx, mk.conv, mk.user, peer))
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return memberState{}, err
	}
	b.members[mk] = ms
	return ms, nil
}

// MessageByClientID implements store.Store. It reads what the batch's
// duplicate check reads (findDup), on the read pool.
func (s *Store) MessageByClientID(ctx context.Context, senderID int64, clientMsgID string) (store.Message, error) {
	if err := s.check(); err != nil {
		return store.Message{}, err
	}
	m := store.Message{SenderID: senderID, ClientMsgID: clientMsgID}
	var seq, sentAt, ref int64
	err := s.read.QueryRowContext(ctx, `SELECT conversation_id, seq, text, sent_at, kind, ref_seq FROM messages
		WHERE sender_id = $1 AND client_msg_id = $2`, senderID, clientMsgID).Scan(&m.ConversationID, &seq, &m.Text, &sentAt, &m.Kind, &ref)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Message{}, fmt.Errorf("message %q of user %d: %w", clientMsgID, senderID, store.ErrNotFound)
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("sqlstore: message by client id: %w", err)
	}
	m.Seq, m.SentAt, m.RefSeq = uint64(seq), timeOf(sentAt), uint64(ref)
	return m, nil
}

// lookupDup returns the message stored under key before this attempt or
// earlier in it. loadStored learnt which keys to read; reading each when
// first asked for keeps the changes made earlier in the batch.
func (b *appendBatch) lookupDup(ctx context.Context, key dupKey) (store.Message, bool, error) {
	if m, ok := b.seen[key]; ok {
		return m, true, nil
	}
	if !b.stored[key] {
		return store.Message{}, false, nil
	}
	m := store.Message{SenderID: key.sender, ClientMsgID: key.cmid}
	var seq, sentAt, ref int64
	err := b.findDup.QueryRowContext(ctx, key.sender, key.cmid).Scan(&m.ConversationID, &seq, &m.Text, &sentAt, &m.Kind, &ref)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Message{}, false, nil
	}
	if err != nil {
		return store.Message{}, false, err
	}
	m.Seq, m.SentAt, m.RefSeq = uint64(seq), timeOf(sentAt), uint64(ref)
	b.seen[key] = m
	return m, true, nil
}

func (b *appendBatch) usersExist(ctx context.Context, ids ...int64) (bool, error) {
	for _, id := range ids {
		ok, known := b.users[id]
		if !known {
			var n int
			if err := b.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM users WHERE id = $1`, id).Scan(&n); err != nil {
				return false, err
			}
			ok = n > 0
			b.users[id] = ok
		}
		if !ok {
			return false, nil
		}
	}
	return true, nil
}

// createPrivate makes the conversation and both memberships. ON CONFLICT
// DO NOTHING lets two nodes create the same pair at once: the loser waits
// for the winner's row and then uses it.
func (b *appendBatch) createPrivate(ctx context.Context, r store.AppendRequest) error {
	if _, err := b.tx.ExecContext(ctx, `INSERT INTO conversations(id, kind, last_seq, created_at, updated_at)
		VALUES ($1, $2, 0, $3, $3) ON CONFLICT (id) DO NOTHING`, r.ConversationID, string(store.Private), b.now); err != nil {
		return fmt.Errorf("create conversation: %w", err)
	}
	for _, u := range []int64{r.SenderID, r.PeerID} {
		if _, err := b.tx.ExecContext(ctx, `INSERT INTO members(conversation_id, user_id) VALUES ($1, $2)
			ON CONFLICT (conversation_id, user_id) DO NOTHING`, r.ConversationID, u); err != nil {
			return fmt.Errorf("create membership: %w", err)
		}
	}
	return nil
}

// flush writes back what append kept in memory, in id order so that lock
// acquisition stays ordered.
func (b *appendBatch) flush(ctx context.Context) error {
	if err := b.insertQueued(ctx); err != nil {
		return err
	}
	ids := make([]string, 0, len(b.convs))
	for id, st := range b.convs {
		if st.dirty {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if err := b.updateConversations(ctx, ids); err != nil {
		return fmt.Errorf("update conversations: %w", err)
	}
	// A sender has read what they sent: both cursors move to their last
	// message. Nobody else's cursors change.
	keys := slices.SortedFunc(maps.Keys(b.senderSeq), compareMemberKeys)
	if err := b.updateSenders(ctx, keys); err != nil {
		return fmt.Errorf("update sender cursors: %w", err)
	}
	return nil
}

func compareMemberKeys(x, y memberKey) int {
	return cmp.Or(cmp.Compare(x.conv, y.conv), cmp.Compare(x.user, y.user))
}
