package store

import (
	"context"
	"database/sql"
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
type groupCommit struct {
	db      *DB
	mu      sync.Mutex
	queue   []*groupReq
	leading bool
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
		n := min(len(g.queue), maxGroup)
		if n == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		batch := g.queue[:n:n]
		g.queue = g.queue[n:]
		if len(g.queue) == 0 {
			g.queue = nil
		}
		g.mu.Unlock()
		g.commit(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// commit runs one batch in one transaction and sets every request's
// result.
func (g *groupCommit) commit(batch []*groupReq) {
	fail := func(err error) {
		for _, r := range batch {
			if r.err == nil && r.panic == nil {
				r.err = err
			}
		}
	}
	// The transaction is not bound to any caller's context: one caller
	// giving up must not roll back the others. Each statement runs under
	// its caller's context.
	sqlTx, err := g.db.sql.BeginTx(context.Background(), nil)
	if err != nil {
		fail(fmt.Errorf("begin transaction: %w", err))
		return
	}
	// Statements every caller runs are prepared once for the batch.
	sh := &txShared{driver: g.db.driver, stmts: map[string]*sql.Stmt{}}
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
		tx := &Tx{Tx: sqlTx, Now: g.db.now().UTC().Truncate(time.Microsecond), shared: sh}
		marks := sh.marks()
		r.panic, r.err = call(r.fn, tx)
		if r.err != nil || r.panic != nil {
			sh.undo(marks)
			// Undo this caller's changes only. If even that fails, the
			// transaction is in an unknown state: give it up for all.
			if err := exec(context.Background(), "ROLLBACK TO group_tx"); err != nil {
				_ = sqlTx.Rollback()
				fail(fmt.Errorf("transaction rolled back with its batch: %w", err))
				return
			}
		}
		if err := exec(context.Background(), "RELEASE group_tx"); err != nil {
			_ = sqlTx.Rollback()
			fail(fmt.Errorf("transaction rolled back with its batch: %w", err))
			return
		}
		if r.err == nil && r.panic == nil {
			ran++
		}
	}
	if ran == 0 {
		_ = sqlTx.Rollback()
		return
	}
	if err := sh.flush(context.Background(), sqlTx); err != nil {
		_ = sqlTx.Rollback()
		fail(fmt.Errorf("transaction rolled back with its batch: %w", err))
		return
	}
	if err := sqlTx.Commit(); err != nil {
		if errors.Is(err, sql.ErrTxDone) {
			err = fmt.Errorf("transaction already ended by a caller: %w", err)
		}
		fail(fmt.Errorf("commit: %w", err))
	}
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
