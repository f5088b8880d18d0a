package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"bulwark/internal/store/postgres"
)

// DB is one database (the control database or one org's) with the driver
// it speaks and the clock its transactions read.
type DB struct {
	sql    *sql.DB
	driver Driver
	now    func() time.Time
	group  *groupCommit // SQLite: transactions of concurrent callers share one commit
	stmts  sync.Map     // SQLite: query text → *sql.Stmt (QueryRowPrepared, group commits)
	// preparing: SQLite, query text → struct{}: a statement asked for by
	// a group commit, being prepared (or refused) for the cache.
	preparing sync.Map
	cached    atomic.Int32   // statements in stmts or being prepared for it
	preps     sync.WaitGroup // the background prepares
}

// maxCachedStmts bounds the statements that group commits have a
// database prepare for its cache (QueryRowPrepared's few point reads come
// on top): callers pass constant SQL, so the set is small; the bound keeps
// a mistake (text built from input) from growing it without end.
const maxCachedStmts = 256

// cachedStmt returns query prepared on the database (not on any one
// connection: database/sql prepares it on each connection it runs on, and
// keeps it there), or nil when it is not cached yet. Then it is prepared
// in the background, so that the caller (a group commit's leader, which
// holds a connection) never waits for a connection of the pool to prepare
// it on.
func (db *DB) cachedStmt(query string) *sql.Stmt {
	if v, ok := db.stmts.Load(query); ok {
		return v.(*sql.Stmt)
	}
	if _, started := db.preparing.LoadOrStore(query, struct{}{}); started || db.cached.Add(1) > maxCachedStmts {
		return nil
	}
	db.preps.Add(1)
	go func() {
		defer db.preps.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := db.sql.PrepareContext(ctx, query)
		if err != nil {
			// Refused (bad SQL, a database closing): left out of the
			// cache for good; the caller prepares it on its
			// transaction each time and meets the error there.
			return
		}
		if _, loaded := db.stmts.LoadOrStore(query, st); loaded {
			st.Close()
		}
	}()
	return nil
}

// QueryRowPrepared is SQL().QueryRowContext for a hot point read: on
// SQLite, whose driver prepares every query anew (most of a point read's
// cost), the statement is prepared once per database handle (and
// connection, by database/sql) and kept until the handle closes. query
// must be a constant, not text built from input. On PostgreSQL, whose
// driver caches prepared statements itself, it is the plain call.
func (db *DB) QueryRowPrepared(ctx context.Context, query string, args ...any) *sql.Row {
	if db.driver != SQLite {
		return db.sql.QueryRowContext(ctx, query, args...)
	}
	if v, ok := db.stmts.Load(query); ok {
		return v.(*sql.Stmt).QueryRowContext(ctx, args...)
	}
	st, err := db.sql.PrepareContext(ctx, query)
	if err != nil {
		return db.sql.QueryRowContext(ctx, query, args...) // meets the same error
	}
	if v, loaded := db.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		st = v.(*sql.Stmt)
	}
	return st.QueryRowContext(ctx, args...)
}

// close closes the prepared statements and the pool.
func (db *DB) close() error {
	db.preps.Wait()
	db.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		db.stmts.Delete(k)
		return true
	})
	err := db.sql.Close()
	if db.group != nil {
		db.group.sync.close()
	}
	return err
}

// Sync makes every change committed so far on the database durable. A
// SQLite group commit makes its changes visible before its fsync, which
// its callers wait for (walsync.go); a reader that carries what it read
// into another database (a signed checkpoint of an org's log, kept in the
// control database) calls Sync first, so that what it carries cannot be
// lost by a crash that keeps the copy. PostgreSQL's commits are durable
// when they are visible: there it does nothing.
func (db *DB) Sync() error {
	if db.group == nil {
		return nil
	}
	return db.group.sync.syncNow()
}

// SQL returns the underlying pool, for reads outside a transaction.
func (db *DB) SQL() *sql.DB { return db.sql }

// Driver returns the driver of the database.
func (db *DB) Driver() Driver { return db.driver }

// Querier runs statements in a transaction: a *sql.Tx, or on PostgreSQL
// the *sql.Conn that InTx began its transaction on.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// Tx is a transaction with the time of the change it makes.
type Tx struct {
	Querier
	// Now is the time of this change: UTC, truncated to microseconds, the
	// same for every timestamp the transaction writes.
	Now time.Time

	shared *txShared // nil for a Tx made by hand
	sqlTx  *sql.Tx   // a SQLite group commit's transaction (for its statements)
}

// InTx runs fn in a transaction and commits it when fn returns nil; it
// rolls back when fn returns an error (which InTx returns as is) or panics.
// On SQLite the transaction takes the write lock when it begins, so InTx
// is for changes; plain reads use SQL().
//
// On SQLite, transactions of concurrent callers are committed together
// (group commit, see groupCommit): each caller's fn runs in a savepoint of
// one shared transaction, so a caller that fails rolls back only its own
// changes, and one fsync makes all of them durable before any InTx
// returns. fn must therefore not commit or roll back tx itself, and must
// not call InTx on the same database.
func (db *DB) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	if db.group != nil {
		return db.group.run(ctx, fn)
	}
	if db.driver == Postgres {
		return db.inTxPostgres(ctx, fn)
	}
	sqlTx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	sh := &txShared{driver: db.driver}
	tx := &Tx{Querier: sqlTx, Now: db.now().UTC().Truncate(time.Microsecond), shared: sh}
	committed := false
	defer func() {
		if !committed {
			// The rollback error is secondary to the one being returned
			// (or the panic being propagated).
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := sh.flush(ctx, tx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		if errors.Is(err, sql.ErrTxDone) {
			return fmt.Errorf("commit: transaction already ended by fn: %w", err)
		}
		return fmt.Errorf("commit: %w", err)
	}
	committed = true
	sh.committed()
	return nil
}

// inTxPostgres is InTx on PostgreSQL. The transaction runs on one
// connection taken from the pool, begun and ended by hand rather than
// through database/sql's Tx, so that the writes that callers deferred
// (Deferred values that are also Pipelined, such as audit events) go to
// the server together with the COMMIT, in one round trip: a transaction
// that defers its last writes costs no more round trips than one that
// does not. A Deferred that is not Pipelined is flushed as usual, and then
// every write before COMMIT runs in order, one statement at a time.
func (db *DB) inTxPostgres(ctx context.Context, fn func(tx *Tx) error) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	// Back to the pool when done; pgx's session reset refuses (and the pool
	// closes) a connection that is still in a transaction, so none that a
	// failed ROLLBACK left open is used again.
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	sh := &txShared{driver: db.driver}
	tx := &Tx{Querier: conn, Now: db.now().UTC().Truncate(time.Microsecond), shared: sh}
	ended := false
	defer func() {
		if !ended {
			// The rollback error is secondary to the one being returned
			// (or the panic being propagated); it runs even when ctx has
			// ended, bounded.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_, _ = conn.ExecContext(rctx, "ROLLBACK")
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	var stmts []postgres.Statement
	for _, d := range sh.deferred {
		p, ok := d.(Pipelined)
		if !ok {
			stmts = nil
			if err := sh.flush(ctx, tx); err != nil {
				return err
			}
			break
		}
		stmts = p.AppendStatements(stmts)
	}
	if err := postgres.CommitPipelined(ctx, conn, stmts); err != nil {
		if errors.Is(err, postgres.ErrRolledBack) {
			ended = true // the server ended it
		}
		if len(stmts) > 0 {
			return fmt.Errorf("deferred writes and commit: %w", err)
		}
		return fmt.Errorf("commit: %w", err)
	}
	ended = true
	sh.committed()
	return nil
}

// WithPgConn runs fn on one of the database's PostgreSQL connections, as
// pgx's own: for work that pipelines statements whose results it reads
// (store's transactions pipeline only writes). fn that begins a
// transaction must end it; a connection it leaves inside one is not used
// again. On SQLite it returns errors.ErrUnsupported.
func (db *DB) WithPgConn(ctx context.Context, fn func(c *pgx.Conn) error) error {
	if db.driver != Postgres {
		return fmt.Errorf("store: pgx connection on %s: %w", db.driver, errors.ErrUnsupported)
	}
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return postgres.WithConn(conn, fn)
}

// RawRows runs query on PostgreSQL with every result column in the
// server's binary format and calls fn with each row's values as they came
// (nil for NULL; valid only during the call): int8 is 8 bytes big-endian,
// timestamptz microseconds since 2000-01-01 UTC in 8 bytes, text and bytea
// their bytes. On SQLite it returns errors.ErrUnsupported.
func (db *DB) RawRows(ctx context.Context, query string, args []any, fn func(values [][]byte) error) error {
	if db.driver != Postgres {
		return fmt.Errorf("store: raw rows on %s: %w", db.driver, errors.ErrUnsupported)
	}
	return db.WithPgConn(ctx, func(c *pgx.Conn) error { return postgres.RawRows(ctx, c, query, args, fn) })
}
