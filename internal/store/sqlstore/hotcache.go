package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"sync"

	"github.com/magpie-im/magpie/internal/store"
)

// hotCache keeps, on SQLite, what AppendMessages last read and wrote of
// each conversation (its last seq, kind and mute) and of each sender's
// membership, so that a batch of senders it knows runs no reads before its
// inserts: no duplicate lookup, no conversation or membership read.
//
// It is valid only while nothing else has written to the database since
// the batch that filled it. Its stamp says so: SQLite's data_version
// changes when another connection (another process) commits, and
// total_changes() counts every row this process's one write connection
// changed, whoever asked. A batch reads both inside its transaction, which
// holds the write lock; if they differ from the stamp the cache is dropped
// and the batch reads everything, as without a cache. MoveCursors, whose
// writes touch none of the cached columns, carries the stamp forward.
//
// PostgreSQL has no such cache: there several logic nodes write.
type hotCache struct {
	// On the write connection. Two plain statements, not one SELECT over
	// pragma_data_version: that table-valued function prepares its PRAGMA
	// again on every run, which cost a tenth of the server's CPU at 1,000
	// messages/s (two stamps a batch).
	version, changes *sql.Stmt
	// SAVEPOINT and RELEASE, run before a batch's end stamp: FTS5 (the
	// search index the batch wrote) writes its pending rows when the
	// transaction commits, which would move total_changes() past the
	// stamp; a savepoint makes it write them before the stamp is read.
	savepoint, release *sql.Stmt

	mu      sync.Mutex
	at      hotStamp
	convs   map[string]convState
	members map[hotKey]memberState
	hits    int // batches served, for the tests
}

// hotStamp is the state of the database the cache matches.
type hotStamp struct {
	dataVersion, totalChanges int64
	valid                     bool
}

// hotKey is a membership and the peer it was read for (0 in groups).
type hotKey struct {
	conv       string
	user, peer int64
}

// Bounds on the cache; past them it starts again empty.
const (
	maxHotConvs   = 1 << 16
	maxHotMembers = 1 << 17
)

func newHotCache(ctx context.Context, write *sql.DB) (*hotCache, error) {
	version, err := write.PrepareContext(ctx, `PRAGMA data_version`)
	if err != nil {
		return nil, err
	}
	changes, err := write.PrepareContext(ctx, `SELECT total_changes()`)
	if err != nil {
		version.Close()
		return nil, err
	}
	savepoint, err := write.PrepareContext(ctx, `SAVEPOINT hot_stamp`)
	if err != nil {
		version.Close()
		changes.Close()
		return nil, err
	}
	release, err := write.PrepareContext(ctx, `RELEASE hot_stamp`)
	if err != nil {
		version.Close()
		changes.Close()
		savepoint.Close()
		return nil, err
	}
	return &hotCache{version: version, changes: changes, savepoint: savepoint, release: release}, nil
}

func (h *hotCache) close() error {
	if h == nil {
		return nil
	}
	return errors.Join(h.version.Close(), h.changes.Close(), h.savepoint.Close(), h.release.Close())
}

// read is the database's stamp now, in tx.
func (h *hotCache) read(ctx context.Context, tx *sql.Tx) (hotStamp, error) {
	s := hotStamp{valid: true}
	if err := tx.StmtContext(ctx, h.version).QueryRowContext(ctx).Scan(&s.dataVersion); err != nil {
		return s, err
	}
	return h.readEnd(ctx, tx, s)
}

// readEnd is the stamp at the end of tx, which began at start: only
// total_changes() can have moved, as data_version moves only when another
// connection commits, and none can while tx holds the write lock.
func (h *hotCache) readEnd(ctx context.Context, tx *sql.Tx, start hotStamp) (hotStamp, error) {
	s := start
	err := tx.StmtContext(ctx, h.changes).QueryRowContext(ctx).Scan(&s.totalChanges)
	return s, err
}

// readEndOfAppend is readEnd for a transaction that wrote messages: it
// has FTS5 write the search index's pending rows first (see savepoint),
// so that the commit changes no more rows than the stamp counts.
func (h *hotCache) readEndOfAppend(ctx context.Context, tx *sql.Tx, start hotStamp) (hotStamp, error) {
	if _, err := tx.StmtContext(ctx, h.savepoint).ExecContext(ctx); err != nil {
		return start, err
	}
	if _, err := tx.StmtContext(ctx, h.release).ExecContext(ctx); err != nil {
		return start, err
	}
	return h.readEnd(ctx, tx, start)
}

// fill gives b what the cache holds for reqs, if the cache matches the
// database (now) and holds every conversation and sender of reqs; it
// reports whether it did. b then skips its reads (b.unchecked).
func (h *hotCache) fill(b *appendBatch, reqs []store.AppendRequest, now hotStamp) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at != now {
		h.reset(hotStamp{})
		return false
	}
	for _, r := range reqs {
		if _, ok := h.convs[r.ConversationID]; !ok {
			return false
		}
		if _, ok := h.members[hotKey{r.ConversationID, r.SenderID, r.PeerID}]; !ok {
			return false
		}
	}
	for _, r := range reqs {
		if _, ok := b.convs[r.ConversationID]; !ok {
			st := h.convs[r.ConversationID]
			b.convs[r.ConversationID] = &st
		}
		mk := memberKey{r.ConversationID, r.SenderID}
		if _, ok := b.members[mk]; !ok {
			b.members[mk] = h.members[hotKey{r.ConversationID, r.SenderID, r.PeerID}]
		}
	}
	h.hits++
	return true
}

// keep stores what a committed batch knows: the database is then at end.
// If the cache matched the database when the batch began (start), the
// batch's rows join it; otherwise they replace it, as they are all that is
// known to match end.
func (h *hotCache) keep(b *appendBatch, reqs []store.AppendRequest, start, end hotStamp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at != start || len(h.convs)+len(b.convs) > maxHotConvs || len(h.members)+len(reqs) > maxHotMembers {
		h.reset(end)
	}
	h.at = end
	for id, st := range b.convs {
		c := *st
		c.dirty = false
		h.convs[id] = c
	}
	for _, r := range reqs {
		ms, ok := b.members[memberKey{r.ConversationID, r.SenderID}]
		if ok && ms.current && (r.PeerID == 0 || r.ConversationID == store.PrivateConversationID(r.SenderID, r.PeerID)) {
			h.members[hotKey{r.ConversationID, r.SenderID, r.PeerID}] = ms
		}
	}
}

// moved carries the stamp over a write that changed none of the cached
// state (MoveCursors), from start to end.
func (h *hotCache) moved(start, end hotStamp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.at == start {
		h.at = end
	}
}

// drop empties the cache, after a write whose outcome is unknown.
func (h *hotCache) drop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reset(hotStamp{})
}

func (h *hotCache) reset(at hotStamp) {
	h.at = at
	h.convs = make(map[string]convState)
	h.members = make(map[hotKey]memberState)
}

// staleHot reports whether a batch that trusted the cache failed in a way
// a batch that reads everything would not: a client id stored before
// (the batch did not look it up) or a seq taken (which a correct stamp
// rules out, but costs nothing to survive).
func (s *Store) staleHot(trusted bool, err error) bool {
	return trusted && err != nil && s.d.isUniqueViolation(err)
}

// lateDup is lookupDup for a batch that skipped loadStored: before the
// batch refuses key's request, or opens a conversation for it, it asks
// the store whether key was stored before, which would answer the request
// with the original instead.
func (b *appendBatch) lateDup(ctx context.Context, key dupKey) (store.Message, bool, error) {
	if !b.unchecked || key.cmid == "" {
		return store.Message{}, false, nil
	}
	b.stored[key] = true
	m, found, err := b.lookupDup(ctx, key)
	if err == nil && !found {
		delete(b.stored, key)
	}
	return m, found, err
}
