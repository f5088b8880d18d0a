package audit

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// ChainInterval is how often a server looks for logs to chain (ChainDue).
const ChainInterval = time.Second

// A log is due to be chained by ChainDue when this process appended
// chainDueEvents events to it since it was last chained (a segment's
// worth), or when it has waited ChainMaxWait: so the longest an event
// waits in a PostgreSQL inbox, committed but not yet in the hash chain,
// when no read of its log comes first, is about ChainMaxWait and a
// ChainInterval. Each chaining of a log costs two round trips and a
// transaction whatever it moves: a server with many orgs, each writing a
// few events a second, spent more on chaining them every second than on
// the events themselves.
const (
	chainDueEvents = segmentMax
	ChainMaxWait   = 5 * time.Second
)

// chainBatchMax is the most inbox events one chaining transaction moves (a
// variable for tests). Each batch scans the inbox for its oldest events
// (no index), so a batch takes up to a busy log's second of them.
var chainBatchMax = 5000

// Chain moves the committed events waiting in log logID's inbox into its
// chain (PostgreSQL; on SQLite events are chained as they are written and
// there is nothing to do). Reads of a log chain it first.
func (s *Service) Chain(ctx context.Context, logID string) error {
	return s.logDB(ctx, logID, func(db *store.DB) error { return s.chain(ctx, db, logID) })
}

// ChainPending chains and indexes every log this process appended to
// since it last did: the events of PostgreSQL's inboxes chained, and the
// blooms of the blocks completed since built (index). A server calls it
// when it stops.
func (s *Service) ChainPending(ctx context.Context) error {
	return s.chainLogs(ctx, true)
}

// ChainDue is ChainPending for the logs that are due (chainDueEvents,
// ChainMaxWait). A server calls it every ChainInterval.
func (s *Service) ChainDue(ctx context.Context) error {
	return s.chainLogs(ctx, false)
}

// chainLogs chains and indexes the logs waiting, or only the due ones.
func (s *Service) chainLogs(ctx context.Context, all bool) error {
	now := s.opts.Now()
	set := map[string]bool{}
	s.mu.Lock()
	for id, n := range s.unchained {
		if !all && n < chainDueEvents {
			since, seen := s.waitingSince[id]
			if !seen {
				s.waitingSince[id] = now
				continue
			}
			if now.Sub(since) < ChainMaxWait {
				continue
			}
		}
		set[id] = true
		delete(s.unchained, id)
		delete(s.waitingSince, id)
	}
	s.mu.Unlock()
	err := s.eachPending(ctx, set, "chain", func(logID string) error {
		return s.logDB(ctx, logID, func(db *store.DB) error {
			if err := s.chainPending(ctx, db, logID); err != nil {
				return err
			}
			// The events committed since the last time are folded into
			// their blocks' blooms every time, so that the feed holds a
			// bloom per log rather than its events.
			built := s.feed.take(logID)
			s.mu.Lock()
			due := s.written[logID]/blockEvents > s.indexed[logID]
			s.mu.Unlock()
			if !due && len(built) == 0 { // no block completed since the last indexing seen here
				return nil
			}
			return s.indexBuilt(ctx, db, logID, built)
		})
	})
	// The logs that failed are due again at once.
	s.mu.Lock()
	for id := range set {
		s.unchained[id] = max(s.unchained[id], chainDueEvents)
	}
	s.mu.Unlock()
	return err
}

// pendingWorkers is how many logs eachPending works on at once: a log's
// chaining or signing waits mostly on its database, and a server with
// many orgs has them all to do every interval.
const pendingWorkers = 8

// eachPending empties set (a set of logs, under s.mu)
// and runs fn on each log that was in it, pendingWorkers at a time. A log
// whose fn fails goes back into set for the next time, unless its org is
// gone or ctx ended; the first such error is returned.
func (s *Service) eachPending(ctx context.Context, set map[string]bool, what string, fn func(logID string) error) error {
	s.mu.Lock()
	logs := make([]string, 0, len(set))
	for id := range set {
		logs = append(logs, id)
	}
	clear(set)
	s.mu.Unlock()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		next  = make(chan string)
	)
	for range min(pendingWorkers, len(logs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				err := fn(id)
				if err == nil || apperr.CodeOf(err) == apperr.NotFound || ctx.Err() != nil {
					continue // done, or the org is gone, or we are stopping
				}
				s.mu.Lock()
				set[id] = true // try again next time
				s.mu.Unlock()
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("audit: %s log %s: %w", what, id, err)
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range logs {
		next <- id
	}
	close(next)
	wg.Wait()
	return first
}

// inboxVacuumRows is how many events chaining takes out of a log's inbox
// before it vacuums the inbox. The rows taken stay in the table, dead,
// until a vacuum, and chaining reads the table from its start (it has no
// index): autovacuum comes about once a minute, when a busy log leaves
// hundreds of thousands of them (measured: 7.7 ms to find the live rows
// past 300,000 dead ones, 37 ms the first time). Vacuumed every
// inboxVacuumRows, the dead rows cost under a millisecond to pass.
var inboxVacuumRows int64 = 20000

// chain moves db's inbox into logID's chain, up to chainBatchMax events
// per transaction, and vacuums the inbox every inboxVacuumRows events
// taken. Most reads find the inbox empty, so it first looks without a
// lock; chainPending, which knows events were appended, does not.
func (s *Service) chain(ctx context.Context, db *store.DB, logID string) error {
	if db.Driver() != store.Postgres {
		return nil
	}
	var one int
	err := db.SQL().QueryRowContext(ctx, "SELECT 1 FROM audit_inbox LIMIT 1").Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("audit: chain: %w", err)
	}
	return s.chainPending(ctx, db, logID)
}

// chainPending is chain without the look. On SQLite, where events are
// chained as they are written, it writes the log's head row where this
// process's last commits left it behind (see head).
func (s *Service) chainPending(ctx context.Context, db *store.DB, logID string) error {
	if db.Driver() != store.Postgres {
		return s.writeHeadRow(ctx, db, logID)
	}
	for {
		moved, err := s.chainBatch(ctx, db, logID)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.taken[logID] += int64(moved)
		vacuum := s.taken[logID] >= inboxVacuumRows
		if vacuum {
			s.taken[logID] = 0
		}
		s.mu.Unlock()
		if vacuum {
			if _, err := db.SQL().ExecContext(ctx, "VACUUM audit_inbox"); err != nil {
				return fmt.Errorf("audit: vacuum the inbox: %w", err)
			}
		}
		if moved < chainBatchMax {
			return nil
		}
	}
}

// writeHeadRow writes log logID's head row up to the end this process
// last committed, if it has not, and never back.
func (s *Service) writeHeadRow(ctx context.Context, db *store.DB, logID string) error {
	s.mu.Lock()
	at, ok := s.heads[logID]
	row := s.headRows[logID]
	s.mu.Unlock()
	if !ok || row.seq >= at.seq {
		return nil
	}
	now := s.opts.Now()
	err := db.InTx(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq < $1", at.seq, at.hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit: write the head row: %w", err)
	}
	s.mu.Lock()
	if s.headRows[logID].seq < at.seq {
		s.headRows[logID] = headRow{at.seq, now}
	}
	s.mu.Unlock()
	return nil
}

// chainBatch chains up to chainBatchMax inbox events in one transaction, in
// two round trips on one pgx connection. The first sends BEGIN, a lock of
// the head row (so that chainings of the log, on any node, and appends by
// hand run one at a time) and the taking of the oldest events out of the
// inbox (by n; without an index, a scan of the inbox and a sort of its
// keys): the server runs them in order, so the take, a statement of its
// own after the lock, sees what a chaining that held the lock before took
// away. Then each event gets the next seq and its hashes, and the second
// round trip sends the insert, the new head and COMMIT.
func (s *Service) chainBatch(ctx context.Context, db *store.DB, logID string) (int, error) {
	moved := 0
	err := db.WithPgConn(ctx, func(c *pgx.Conn) (err error) {
		open := false
		defer func() {
			if open {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if _, rerr := c.Exec(rctx, "ROLLBACK"); rerr != nil {
					c.Close(rctx) // never back to the pool inside a transaction
				}
			}
			if err != nil {
				err = fmt.Errorf("audit: chain: %w", err)
			}
		}()
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue("SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE")
		b.Queue(`DELETE FROM audit_inbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM audit_inbox ORDER BY n LIMIT $1)) RETURNING n, fields`, chainBatchMax)
		open = true
		br := c.SendBatch(ctx, b)
		var seq int64
		var prev []byte
		type taken struct {
			n      int64
			fields []byte
		}
		var in []taken
		read := func() error {
			if _, err := br.Exec(); err != nil {
				return err
			}
			if err := br.QueryRow().Scan(&seq, &prev); err != nil {
				return err
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var t taken
				if err := rows.Scan(&t.n, &t.fields); err != nil {
					return err
				}
				in = append(in, t)
			}
			return rows.Err()
		}
		err = read()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if len(in) == 0 {
			return nil // the deferred ROLLBACK ends it
		}
		if len(prev) == 0 {
			prev = genesis(logID)
		}
		// RETURNING gives no order: chain them in the inbox's.
		slices.SortFunc(in, func(a, b taken) int { return cmp.Compare(a.n, b.n) })
		k := len(in)
		fields := make([][]byte, k)
		for i := range in {
			fields[i] = in[i].fields
		}
		ch, _ := chainSegments(make([]byte, 0, 1024), logID, seq, prev, fields)
		seq = ch.ends[len(ch.ends)-1]
		first := seq + 1 - int64(k)
		defer func() {
			if err == nil {
				s.wrote(logID, seq)
				s.feed.committed(logID, first, fields)
			}
		}()
		b = &pgx.Batch{}
		b.Queue(`INSERT INTO audit_segments (seq_start, seq_end, events) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bytea[])`,
			ch.starts, ch.ends, ch.segs)
		b.Queue("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1", seq, ch.last)
		b.Queue("COMMIT")
		br = c.SendBatch(ctx, b)
		var tag pgconn.CommandTag
		for i := range 3 {
			if tag, err = br.Exec(); err != nil {
				break
			}
			if i == 2 {
				open = false // the server ended the transaction
			}
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err == nil && tag.String() != "COMMIT" {
			err = errors.New("the transaction was rolled back instead of committed")
		}
		if err != nil {
			return err
		}
		moved = k
		return nil
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
}
