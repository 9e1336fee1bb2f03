package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
)

// searchIndexer writes SQLite's search index (messages_fts, migration 7)
// behind the append path instead of inside it (migration 16). FTS5 writes
// a new index segment at every commit that inserted rows, and merges
// segments as they pile up: with a trigger in the message transaction
// that was a third more CPU per stored message at 1,000 messages/s (a
// commit carries one or two messages there) and half the closed-loop
// throughput. Here rows past messages_fts_upto (the highest messages
// rowid indexed) are indexed every searchIndexEvery, many commits'
// messages in one transaction, and Search first catches up, so a search
// still finds every message stored before it began.
//
// A new row's rowid is above every row's, so one watermark says which rows
// are indexed; the update and delete triggers touch the index only for
// rows at or below it (an edit of a row not yet indexed is read as it is
// when its turn comes), and a delete brings the watermark down to the
// highest rowid left, since SQLite may hand a deleted top rowid out again.
type searchIndexer struct {
	mu      sync.Mutex  // one catch-up at a time: the ticker's or a search's
	pending atomic.Bool // this process stored messages since the last catch-up
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once // stop closes once
}

const (
	// searchIndexEvery is how often stored messages are indexed: a search
	// catches up first, so it bounds only how much work one catch-up does.
	searchIndexEvery = 100 * time.Millisecond
	// searchIndexChunk is the most rows one index transaction takes, so
	// that it holds SQLite's one writer (and the commits behind it) for
	// milliseconds, not seconds, after a large import.
	searchIndexChunk = 2048
)

// startSearchIndexer starts the indexing loop (SQLite only); Close stops it.
func (s *Store) startSearchIndexer() {
	x := &searchIndexer{stop: make(chan struct{}), done: make(chan struct{})}
	x.pending.Store(true) // another process, or the last run, may have left rows
	s.search = x
	go func() {
		defer close(x.done)
		t := time.NewTicker(searchIndexEvery)
		defer t.Stop()
		for {
			select {
			case <-x.stop:
				return
			case <-t.C:
			}
			if !x.pending.Swap(false) {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := s.catchUpSearch(ctx); err != nil {
				x.pending.Store(true) // try again at the next tick
			}
			cancel()
		}
	}()
}

// stopSearchIndexer stops the loop and waits for a catch-up under way.
func (s *Store) stopSearchIndexer() {
	if s.search != nil {
		s.search.once.Do(func() { close(s.search.stop) })
		<-s.search.done
	}
}

// storedMessages tells the indexer that AppendMessages committed rows.
func (s *Store) storedMessages() {
	if s.search != nil {
		s.search.pending.Store(true)
	}
}

// searchCaughtUp makes the index cover every message committed before it
// was called (SQLite; a no-op on PostgreSQL, whose index is written with
// the rows). It reads first, so a search with nothing pending writes
// nothing.
func (s *Store) searchCaughtUp(ctx context.Context) error {
	if s.search == nil {
		return nil
	}
	var behind bool
	if err := s.read.QueryRowContext(ctx, `SELECT (SELECT upto FROM messages_fts_upto) <
		(SELECT COALESCE(MAX(rowid), 0) FROM messages)`).Scan(&behind); err != nil || !behind {
		return err
	}
	_, err := s.catchUpSearch(ctx)
	return err
}

// catchUpSearch indexes every row past the watermark, a chunk per
// transaction, and returns how many rows it took.
func (s *Store) catchUpSearch(ctx context.Context) (int64, error) {
	s.search.mu.Lock()
	defer s.search.mu.Unlock()
	var total int64
	for {
		n, more, err := s.indexSearchChunk(ctx)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// indexSearchChunk indexes up to searchIndexChunk rows past the watermark
// in one write transaction; more says rows are left. It leaves the hot
// cache valid, as MoveCursors does: it writes none of the cached columns.
func (s *Store) indexSearchChunk(ctx context.Context) (n int64, more bool, err error) {
	var start, end hotStamp
	err = s.inWriteTx(ctx, func(tx *sql.Tx) error {
		ctx := s.inTx(ctx)
		var upto, last int64
		if err := tx.QueryRowContext(ctx, `SELECT (SELECT upto FROM messages_fts_upto),
			(SELECT COALESCE(MAX(rowid), 0) FROM messages)`).Scan(&upto, &last); err != nil {
			return err
		}
		n, more = 0, false
		if last <= upto {
			return nil
		}
		if s.hc != nil {
			var err error
			if start, err = s.hc.read(ctx, tx); err != nil {
				return err
			}
		}
		to := min(last, upto+searchIndexChunk)
		if _, err := tx.ExecContext(ctx, `INSERT INTO messages_fts(rowid, text) SELECT rowid, text FROM messages
			WHERE rowid > $1 AND rowid <= $2 AND kind IN (0, 1) AND text <> '' AND NOT recalled`, upto, to); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE messages_fts_upto SET upto = $1`, to); err != nil {
			return err
		}
		n, more = to-upto, to < last
		if s.hc == nil {
			return nil
		}
		var err error
		end, err = s.hc.readEndOfAppend(ctx, tx, start)
		return err
	})
	if err != nil {
		if s.hc != nil {
			s.hc.drop()
		}
		return 0, false, err
	}
	if s.hc != nil && n > 0 {
		s.hc.moved(start, end)
	}
	return n, more, nil
}
