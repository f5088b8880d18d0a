package store

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"

	"bulwark/internal/store/postgres"
)

// Deferred is work that writers in a transaction hand over to be written
// in one go just before the transaction commits: many small inserts of
// the same kind (audit events) become one statement. Mark and Undo keep it
// in step with the savepoints of a group commit: when a caller's fn fails,
// what that caller added is dropped along with its changes.
type Deferred interface {
	// Mark returns the point that Undo returns to.
	Mark() int
	// Undo drops what was added since mark.
	Undo(mark int)
	// Flush writes what was added. It runs once, in the transaction, just
	// before the commit; an error rolls the transaction back.
	Flush(ctx context.Context, tx *Tx) error
}

// Committer is a Deferred told, after its transaction committed, that it
// did: what it flushed is in the database (on SQLite, with the group
// commit's fsync still to come: a crash can take it back, with every later
// transaction). It is not called when the commit fails. Committed runs on
// the committing goroutine (a group commit's leader) and must be quick.
type Committer interface {
	Committed()
}

// Pipelined is a Deferred whose Flush only runs statements whose results
// it does not read. On PostgreSQL, InTx sends them with the transaction's
// COMMIT in one round trip instead of calling Flush; elsewhere Flush runs.
type Pipelined interface {
	Deferred
	// AppendStatements appends to stmts the statements that Flush would
	// run, in its order, and returns the longer slice.
	AppendStatements(stmts []Statement) []Statement
}

// Statement is one SQL statement and its arguments.
type Statement = postgres.Statement

// txShared is what the Tx values of one database transaction share.
type txShared struct {
	driver   Driver
	keys     []any
	deferred []Deferred
	// db and stmts, in a group commit only (nil elsewhere): the database
	// and the statements its callers ran, bound to the transaction; they
	// close with it.
	db    *DB
	stmts map[string]*sql.Stmt
}

// batchPrepares counts the statements prepared for one batch only (not
// found in the cache), for tests.
var batchPrepares atomic.Int64

// prepared returns query prepared on the group commit's transaction,
// once for all its callers; nil outside a group commit or when the
// statement does not prepare (the caller then runs the query as is and
// meets the error there). The statement comes from the database's cache
// (DB.cachedStmt) when it is there: database/sql keeps it prepared on each
// connection it ran on, so the SQL is compiled once per connection rather
// than once per batch; a query not yet cached is prepared for this batch
// and cached for the next ones.
func (sh *txShared) prepared(tx *sql.Tx, query string) *sql.Stmt {
	if sh == nil || sh.stmts == nil {
		return nil
	}
	if st, ok := sh.stmts[query]; ok {
		return st
	}
	var st *sql.Stmt
	if cached := sh.db.cachedStmt(query); cached != nil {
		st = tx.StmtContext(context.Background(), cached)
	} else {
		batchPrepares.Add(1)
		var err error
		if st, err = tx.PrepareContext(context.Background(), query); err != nil {
			return nil
		}
	}
	sh.stmts[query] = st
	return st
}

// ExecOnce is ExecContext for a statement that every caller of a SQLite
// group commit may run (an insert of a row of a kind), prepared once per
// batch as QueryRowOnce is. Elsewhere it is tx.ExecContext.
func (tx *Tx) ExecOnce(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := tx.shared.prepared(tx.sqlTx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// QueryRowOnce is QueryRowContext for a statement that every caller of a
// SQLite group commit runs (a point read by id): it is prepared once per
// batch rather than once per caller, which is most of such a read's cost
// on SQLite. Elsewhere it is tx.QueryRowContext.
func (tx *Tx) QueryRowOnce(ctx context.Context, query string, args ...any) *sql.Row {
	if st := tx.shared.prepared(tx.sqlTx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// Driver returns the driver of the transaction's database.
func (tx *Tx) Driver() Driver {
	if tx.shared == nil {
		return ""
	}
	return tx.shared.driver
}

// Deferred returns the transaction's Deferred under key, made by mk the
// first time. ok is false for a Tx made by hand rather than by InTx: it
// defers nothing, and the caller writes at once.
func (tx *Tx) Deferred(key any, mk func() Deferred) (d Deferred, ok bool) {
	sh := tx.shared
	if sh == nil {
		return nil, false
	}
	for i, k := range sh.keys {
		if k == key {
			return sh.deferred[i], true
		}
	}
	d = mk()
	sh.keys = append(sh.keys, key)
	sh.deferred = append(sh.deferred, d)
	return d, true
}

// At returns a copy of tx whose change happens at now: for a transaction
// that writes what many changes would (an import), each with its time.
func (tx *Tx) At(now time.Time) *Tx {
	return &Tx{Querier: tx.Querier, Now: now.UTC().Truncate(time.Microsecond), shared: tx.shared, sqlTx: tx.sqlTx}
}

// marks returns the marks of the Deferred values made so far.
func (sh *txShared) marks() []int {
	m := make([]int, len(sh.deferred))
	for i, d := range sh.deferred {
		m[i] = d.Mark()
	}
	return m
}

// undo returns every Deferred to marks and forgets those made after them.
func (sh *txShared) undo(marks []int) {
	for i, m := range marks {
		sh.deferred[i].Undo(m)
	}
	sh.keys = sh.keys[:len(marks)]
	sh.deferred = sh.deferred[:len(marks)]
}

// flush writes every Deferred, in the order they were made.
func (sh *txShared) flush(ctx context.Context, tx *Tx) error {
	for _, d := range sh.deferred {
		if err := d.Flush(ctx, tx); err != nil {
			return fmt.Errorf("deferred writes: %w", err)
		}
	}
	return nil
}

// committed tells the Deferred values that are Committers that their
// transaction committed.
func (sh *txShared) committed() {
	for _, d := range sh.deferred {
		if c, ok := d.(Committer); ok {
			c.Committed()
		}
	}
}

// atCommit is the statements of ExecAtCommit (store.Pipelined).
type atCommit []Statement

type atCommitKey struct{}

func (a *atCommit) Mark() int     { return len(*a) }
func (a *atCommit) Undo(mark int) { clear((*a)[mark:]); *a = (*a)[:mark] }
func (a *atCommit) AppendStatements(stmts []Statement) []Statement {
	return append(stmts, *a...)
}
func (a *atCommit) Flush(ctx context.Context, tx *Tx) error {
	for _, st := range *a {
		if _, err := tx.ExecContext(ctx, st.SQL, st.Args...); err != nil {
			return err
		}
	}
	return nil
}

// ExecAtCommit runs a write whose result its caller does not need (an
// insert of a row whose id it made): on PostgreSQL, in a transaction of
// InTx, it is sent with the COMMIT, with the other deferred writes, in one
// round trip, and its error fails the commit; elsewhere it runs now
// (ExecOnce). The caller must not read what it writes in the same
// transaction, nor run a later statement that depends on it.
func (tx *Tx) ExecAtCommit(ctx context.Context, query string, args ...any) error {
	if tx.Driver() == Postgres {
		if d, ok := tx.Deferred(atCommitKey{}, func() Deferred { return &atCommit{} }); ok {
			a := d.(*atCommit)
			*a = append(*a, Statement{SQL: query, Args: args})
			return nil
		}
	}
	_, err := tx.ExecOnce(ctx, query, args...)
	return err
}
