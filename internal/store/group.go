package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"
)

// groupCommit commits the transactions of concurrent callers of InTx on
// one SQLite database together. SQLite has one writer at a time and, with
// synchronous=FULL, an fsync per commit: committing a batch at once makes
// durable writes cost one fsync per batch instead of one per caller.
//
// The first caller to find no batch running becomes the leader: it begins
// one transaction, runs each queued fn inside a savepoint of its own
// (ROLLBACK TO on error or panic, so a failing caller undoes only its
// changes), commits, and wakes every caller of the batch with its own
// result; callers that arrived meanwhile form the next batch. No caller
// returns before the commit that holds its changes is durable, and a
// failed commit fails every caller of the batch.
//
// The fsync is pipelined (see walSync): a batch commits without it, the
// leader goes on to the next batch, and a syncer fsyncs the WAL file and
// only then wakes the batch's callers.
type groupCommit struct {
	db      *DB
	mu      sync.Mutex
	queue   []*groupReq
	leading bool

	sync walSync
}

type groupReq struct {
	ctx   context.Context
	fn    func(tx *Tx) error
	err   error
	panic any
	done  chan struct{}
}

// maxGroup bounds one batch, so that a steady stream of callers still
// sees commits.
const maxGroup = 128

func (g *groupCommit) run(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := &groupReq{ctx: ctx, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, req)
	lead := !g.leading
	if lead {
		g.leading = true
	}
	g.mu.Unlock()
	if lead {
		g.lead()
	}
	<-req.done
	if req.panic != nil {
		panic(req.panic)
	}
	return req.err
}

// lead commits batches until the queue is empty.
func (g *groupCommit) lead() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		// Callers gather into the next batch while the last ones' fsync
		// runs.
		g.sync.wait()
		g.mu.Lock()
		n := min(len(g.queue), maxGroup)
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		if len(g.queue) == 0 {
			g.queue = nil
		}
		g.mu.Unlock()
		if w := g.commit(batch); w != nil {
			g.sync.await(batch, w)
			continue
		}
		for _, r := range batch {
			close(r.done)
		}
	}
}

// commit runs one batch in one transaction and sets every request's
// result. It returns the WAL file whose fsync makes the batch durable, or
// nil when the commit itself did (synchronous=FULL) or the batch left
// nothing to make durable.
func (g *groupCommit) commit(batch []*groupReq) *walFile {
	fail := func(err error) {
		for _, r := range batch {
			if r.err == nil && r.panic == nil {
				r.err = err
			}
		}
	}
	conn, err := g.db.sql.Conn(context.Background())
	if err != nil {
		fail(fmt.Errorf("begin transaction: %w", err))
		return nil
	}
	defer conn.Close()
	// While this connection is open, SQLite keeps the WAL file: the one
	// found here is the one the commit writes to.
	w := g.sync.file(conn)
	if w != nil {
		if _, err := conn.ExecContext(context.Background(), "PRAGMA synchronous = NORMAL"); err != nil {
			w = nil
		}
	}
	committed := g.commitOn(conn, batch, fail)
	if w != nil {
		// The connection goes back to the pool as it came: every other
		// commit on it fsyncs. One that cannot be set back is dropped.
		if _, err := conn.ExecContext(context.Background(), "PRAGMA synchronous = FULL"); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	if !committed {
		return nil
	}
	return w
}

// commitOn runs the batch in one transaction on conn and reports whether
// it committed.
func (g *groupCommit) commitOn(conn *sql.Conn, batch []*groupReq, fail func(error)) bool {
	// The transaction is not bound to any caller's context: one caller
	// giving up must not roll back the others. Each statement runs under
	// its caller's context.
	sqlTx, err := conn.BeginTx(context.Background(), nil)
	if err != nil {
		fail(fmt.Errorf("begin transaction: %w", err))
		return false
	}
	// Statements every caller runs are prepared once for the batch.
	sh := &txShared{driver: g.db.driver, db: g.db, stmts: map[string]*sql.Stmt{}}
	exec := func(ctx context.Context, query string) error {
		if st := sh.prepared(sqlTx, query); st != nil {
			_, err := st.ExecContext(ctx)
			return err
		}
		_, err := sqlTx.ExecContext(ctx, query)
		return err
	}
	ran := 0
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		if err := exec(r.ctx, "SAVEPOINT group_tx"); err != nil {
			r.err = fmt.Errorf("begin transaction: %w", err)
			continue
		}
		tx := &Tx{Querier: sqlTx, Now: g.db.now().UTC().Truncate(time.Microsecond), shared: sh, sqlTx: sqlTx}
		marks := sh.marks()
		r.panic, r.err = call(r.fn, tx)
		if r.err != nil || r.panic != nil {
			sh.undo(marks)
			// Undo this caller's changes only. If even that fails, the
			// transaction is in an unknown state: give it up for all.
			if err := exec(context.Background(), "ROLLBACK TO group_tx"); err != nil {
				_ = sqlTx.Rollback()
				fail(fmt.Errorf("transaction rolled back with its batch: %w", err))
				return false
			}
		}
		if err := exec(context.Background(), "RELEASE group_tx"); err != nil {
			_ = sqlTx.Rollback()
			fail(fmt.Errorf("transaction rolled back with its batch: %w", err))
			return false
		}
		if r.err == nil && r.panic == nil {
			ran++
		}
	}
	if ran == 0 {
		_ = sqlTx.Rollback()
		return false
	}
	if err := sh.flush(context.Background(), &Tx{Querier: sqlTx, Now: g.db.now().UTC().Truncate(time.Microsecond), shared: sh, sqlTx: sqlTx}); err != nil {
		_ = sqlTx.Rollback()
		fail(fmt.Errorf("transaction rolled back with its batch: %w", err))
		return false
	}
	if err := sqlTx.Commit(); err != nil {
		if errors.Is(err, sql.ErrTxDone) {
			err = fmt.Errorf("transaction already ended by a caller: %w", err)
		}
		fail(fmt.Errorf("commit: %w", err))
		return false
	}
	sh.committed()
	return true
}

// call runs fn, turning a panic into a value for its caller to re-raise.
func call(fn func(tx *Tx) error, tx *Tx) (p any, err error) {
	defer func() {
		if v := recover(); v != nil {
			p = v
		}
	}()
	return nil, fn(tx)
}
