package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// deferredRows collects ids and inserts them all in Flush.
type deferredRows struct {
	ids     []int
	flushed *atomic.Int64
}

func (d *deferredRows) Mark() int     { return len(d.ids) }
func (d *deferredRows) Undo(mark int) { d.ids = d.ids[:mark] }
func (d *deferredRows) Flush(ctx context.Context, tx *store.Tx) error {
	d.flushed.Add(1)
	for _, id := range d.ids {
		if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, 'deferred')", id); err != nil {
			return err
		}
	}
	return nil
}

type rowsKey struct{}

// concurrentCallers runs n callers of db.InTx at once; caller i runs
// fn(tx, i), which stores rows i and offset+i, and fails afterwards when i
// is a multiple of failEvery. It checks that each caller's InTx failed or
// not as it should and that exactly the rows of the callers that did not
// fail were committed.
func concurrentCallers(t *testing.T, db *store.DB, n, failEvery, offset int, fn func(tx *store.Tx, i int) error) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.InTx(ctx, func(tx *store.Tx) error {
				if err := fn(tx, i); err != nil {
					return err
				}
				if i%failEvery == 0 {
					return errors.New("fails after its writes")
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if (err != nil) != (i%failEvery == 0) {
			t.Fatalf("caller %d: %v", i, err)
		}
		var k int
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id IN ($1, $2)", i, offset+i).Scan(&k); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 2}[i%failEvery == 0]; k != want {
			t.Fatalf("caller %d: %d of its rows stored, want %d", i, k, want)
		}
	}
}

// Work deferred by concurrent callers is written just before their
// commit: a caller that fails takes its deferred work with it (even when
// it was the first to make the Deferred), the others' is committed and
// visible when InTx returns; a Flush that fails fails the transaction.
func TestInTx_DeferredWorkFollowsItsCaller(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		var flushes atomic.Int64
		concurrentCallers(t, db, 120, 4, 1000, func(tx *store.Tx, i int) error {
			d, ok := tx.Deferred(rowsKey{}, func() store.Deferred { return &deferredRows{flushed: &flushes} })
			if !ok {
				return errors.New("InTx's Tx defers nothing")
			}
			d.(*deferredRows).ids = append(d.(*deferredRows).ids, i, 1000+i)
			return nil
		})
		if flushes.Load() == 0 {
			t.Fatal("no Flush ran")
		}
		// A Flush that fails (a duplicate id) rolls back what the
		// transaction did.
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES (5000, 'direct')"); err != nil {
				return err
			}
			d, _ := tx.Deferred(rowsKey{}, func() store.Deferred { return &deferredRows{flushed: new(atomic.Int64)} })
			d.(*deferredRows).ids = append(d.(*deferredRows).ids, 1001) // stored above
			return nil
		})
		if err == nil {
			t.Fatal("a failing Flush committed")
		}
		var k int
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id = 5000").Scan(&k); err != nil || k != 0 {
			t.Fatalf("the transaction of a failed Flush left its row (%d, %v)", k, err)
		}
		// A Tx made by hand has nowhere to defer to.
		if _, ok := (&store.Tx{}).Deferred(rowsKey{}, func() store.Deferred { return &deferredRows{} }); ok {
			t.Fatal("a hand-made Tx took deferred work")
		}
	})
}

// pipelinedRows is deferredRows whose inserts InTx may send with the
// COMMIT (store.Pipelined).
type pipelinedRows struct{ deferredRows }

func (d *pipelinedRows) AppendStatements(stmts []store.Statement) []store.Statement {
	for _, id := range d.ids {
		stmts = append(stmts, store.Statement{SQL: "INSERT INTO things (id, label) VALUES ($1, 'pipelined')", Args: []any{id}})
	}
	return stmts
}

func (d *pipelinedRows) Flush(ctx context.Context, tx *store.Tx) error {
	d.flushed.Add(1)
	for _, st := range d.AppendStatements(nil) {
		if _, err := tx.ExecContext(ctx, st.SQL, st.Args...); err != nil {
			return err
		}
	}
	return nil
}

type pipelinedKey struct{}

// relabel is a Deferred (not Pipelined) that changes the label of rows
// that other deferred work inserts, so that the order of the two shows.
type relabel struct{ ids []int }

func (d *relabel) Mark() int     { return len(d.ids) }
func (d *relabel) Undo(mark int) { d.ids = d.ids[:mark] }
func (d *relabel) Flush(ctx context.Context, tx *store.Tx) error {
	for _, id := range d.ids {
		if _, err := tx.ExecContext(ctx, "UPDATE things SET label = 'relabelled' WHERE id = $1", id); err != nil {
			return err
		}
	}
	return nil
}

type relabelKey struct{}

// openInTransaction counts the connections to db's database left inside a
// transaction (PostgreSQL; 0 on SQLite). A connection that pgx closed (a
// query cut short by its context) ends its server process, and so its
// transaction, a moment after: such a count is read again for up to 5 s
// until it is 0.
func openInTransaction(t *testing.T, db *store.DB) int {
	t.Helper()
	if db.Driver() != store.Postgres {
		return 0
	}
	var n int
	for range 50 {
		if err := db.SQL().QueryRow(`SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return n
}

// Pipelined deferred work is written with its transaction: on PostgreSQL
// it goes with the COMMIT (Flush never runs), elsewhere through Flush. A
// pipelined statement that fails rolls the whole transaction back and
// leaves no connection inside a transaction; when a Deferred that is not
// Pipelined is there too, everything runs in the order it was deferred.
func TestInTx_PipelinedDeferredWorkCommitsWithItsTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		var flushes atomic.Int64
		deferRows := func(tx *store.Tx, ids ...int) {
			d, ok := tx.Deferred(pipelinedKey{}, func() store.Deferred { return &pipelinedRows{deferredRows{flushed: &flushes}} })
			if !ok {
				t.Error("InTx's Tx defers nothing")
				return
			}
			d.(*pipelinedRows).ids = append(d.(*pipelinedRows).ids, ids...)
		}
		concurrentCallers(t, db, 40, 5, 10_000, func(tx *store.Tx, i int) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, 'direct')", 10_000+i); err != nil {
				return err
			}
			deferRows(tx, i)
			return nil
		})
		if got := flushes.Load(); (got == 0) != (opts.Driver == store.Postgres) {
			t.Fatalf("%d Flush calls on %s: PostgreSQL sends pipelined work with the COMMIT, SQLite flushes it", got, opts.Driver)
		}

		// A pipelined insert that fails (a duplicate id) takes the
		// transaction's other change with it.
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES (20000, 'direct')"); err != nil {
				return err
			}
			deferRows(tx, 1) // stored above
			return nil
		})
		if err == nil {
			t.Fatal("a failing pipelined insert committed")
		}
		var k int
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id = 20000").Scan(&k); err != nil || k != 0 {
			t.Fatalf("the transaction of a failed pipelined insert left its row (%d, %v)", k, err)
		}
		if n := openInTransaction(t, db); n != 0 {
			t.Fatalf("%d connections left inside a transaction", n)
		}
		// Every connection of the pool still works.
		for i := range 8 {
			if err := db.InTx(ctx, func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, 'after')", 30_000+i)
				return err
			}); err != nil {
				t.Fatalf("transaction %d after the failed one: %v", i, err)
			}
		}

		// Work deferred first by a Deferred that is not Pipelined runs
		// first: the pipelined insert after it sees its row relabelled
		// only if the order holds both ways round.
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES (40000, 'direct')"); err != nil {
				return err
			}
			r, _ := tx.Deferred(relabelKey{}, func() store.Deferred { return &relabel{} })
			r.(*relabel).ids = append(r.(*relabel).ids, 40000, 40001)
			deferRows(tx, 40001)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		labels := map[int]string{}
		rows, err := db.SQL().Query("SELECT id, label FROM things WHERE id IN (40000, 40001)")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id int
			var l string
			if err := rows.Scan(&id, &l); err != nil {
				t.Fatal(err)
			}
			labels[id] = l
		}
		rows.Close()
		if labels[40000] != "relabelled" || labels[40001] != "pipelined" {
			t.Fatalf("labels %v: the deferred work did not run in the order it was deferred", labels)
		}
	})
}

// On PostgreSQL a transaction runs on a connection begun by hand: one
// that fails, panics or whose context ends is rolled back, and no
// connection stays inside a transaction.
func TestInTx_EndsEveryTransactionItBegins(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		insert := func(ctx context.Context, tx *store.Tx, id int) error {
			_, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, 'x')", id)
			return err
		}
		ctx := context.Background()
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := insert(ctx, tx, 1); err != nil {
				return err
			}
			return errors.New("changed its mind")
		}); err == nil || err.Error() != "changed its mind" {
			t.Fatalf("InTx returned %v, want fn's error as is", err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Error("fn's panic was not propagated")
				}
			}()
			db.InTx(ctx, func(tx *store.Tx) error {
				if err := insert(ctx, tx, 2); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		cctx, cancel := context.WithCancel(ctx)
		err := db.InTx(cctx, func(tx *store.Tx) error {
			if err := insert(cctx, tx, 3); err != nil {
				return err
			}
			cancel()
			return insert(cctx, tx, 4)
		})
		if err == nil {
			t.Fatal("a transaction whose context ended committed")
		}
		var k int
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id IN (1, 2, 3, 4)").Scan(&k); err != nil || k != 0 {
			t.Fatalf("%d rows of rolled-back transactions stored (%v)", k, err)
		}
		if n := openInTransaction(t, db); n != 0 {
			t.Fatalf("%d connections left inside a transaction", n)
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return insert(ctx, tx, 5) }); err != nil {
			t.Fatal(err)
		}
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id = 5").Scan(&k); err != nil || k != 1 {
			t.Fatalf("a committed row is missing (%d, %v)", k, err)
		}
	})
}

// ExecAtCommit writes with the transaction: on PostgreSQL at the COMMIT
// (a read inside the transaction does not see it yet), elsewhere at once;
// a deferred write that fails takes the transaction's other changes with
// it, and one of a failed transaction is never written.
func TestTx_ExecAtCommitWritesWithTheTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		seenInside := -1
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.ExecAtCommit(ctx, "INSERT INTO things (id, label) VALUES ($1, 'later')", 1); err != nil {
				return err
			}
			if err := tx.ExecAtCommit(ctx, "INSERT INTO things (id, label) VALUES ($1, 'later')", 2); err != nil {
				return err
			}
			return tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM things WHERE id IN (1, 2)").Scan(&seenInside)
		}); err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 2}[opts.Driver == store.Postgres]; seenInside != want {
			t.Fatalf("inside the transaction %d of its deferred rows were visible, want %d on %s", seenInside, want, opts.Driver)
		}
		var k int
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id IN (1, 2)").Scan(&k); err != nil || k != 2 {
			t.Fatalf("%d rows after the commit (%v), want 2", k, err)
		}
		// A duplicate: the commit fails, and the direct insert goes too.
		err := db.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES (3, 'direct')"); err != nil {
				return err
			}
			return tx.ExecAtCommit(ctx, "INSERT INTO things (id, label) VALUES ($1, 'later')", 1)
		})
		if err == nil {
			t.Fatal("a transaction whose deferred insert fails committed")
		}
		// A transaction that fails after deferring writes nothing.
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.ExecAtCommit(ctx, "INSERT INTO things (id, label) VALUES ($1, 'later')", 4); err != nil {
				return err
			}
			return errors.New("fails after deferring")
		}); err == nil {
			t.Fatal("the failing transaction committed")
		}
		if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id IN (3, 4)").Scan(&k); err != nil || k != 0 {
			t.Fatalf("%d rows of failed transactions stored (%v)", k, err)
		}
	})
}

// committedRows is deferredRows that records, when told its transaction
// committed, the ids it had then.
type committedRows struct {
	deferredRows
	mu        *sync.Mutex
	committed *[]int
}

func (d *committedRows) Committed() {
	d.mu.Lock()
	*d.committed = append(*d.committed, d.ids...)
	d.mu.Unlock()
}

type committedKey struct{}

// A Deferred that is a Committer is told after its transaction commits,
// with what it held then: concurrent callers' work, less that of the ones
// that failed; never for a transaction that rolled back, whether fn or a
// Flush failed.
func TestInTx_CommitterIsToldOfItsCommitOnly(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		var mu sync.Mutex
		var told []int
		var flushes atomic.Int64
		add := func(tx *store.Tx, ids ...int) error {
			d, ok := tx.Deferred(committedKey{}, func() store.Deferred {
				return &committedRows{deferredRows: deferredRows{flushed: &flushes}, mu: &mu, committed: &told}
			})
			if !ok {
				return errors.New("InTx's Tx defers nothing")
			}
			d.(*committedRows).ids = append(d.(*committedRows).ids, ids...)
			return nil
		}
		concurrentCallers(t, db, 60, 3, 1000, func(tx *store.Tx, i int) error { return add(tx, i, 1000+i) })
		mu.Lock()
		got := map[int]int{}
		for _, id := range told {
			got[id]++
		}
		mu.Unlock()
		for i := range 60 {
			want := 1
			if i%3 == 0 {
				want = 0 // failed: rolled back
			}
			if got[i] != want || got[1000+i] != want {
				t.Fatalf("caller %d: told of ids %d and %d %d and %d times, want %d", i, i, 1000+i, got[i], got[1000+i], want)
			}
		}
		n := len(told)
		// fn fails: rolled back, not told.
		if err := db.InTx(ctx, func(tx *store.Tx) error {
			if err := add(tx, 7000); err != nil {
				return err
			}
			return errors.New("fails")
		}); err == nil {
			t.Fatal("a failing fn committed")
		}
		// Flush fails (a duplicate id): rolled back, not told.
		if err := db.InTx(ctx, func(tx *store.Tx) error { return add(tx, 7001, 1001) }); err == nil {
			t.Fatal("a failing Flush committed")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(told) != n {
			t.Fatalf("told of %v after transactions that rolled back", told[n:])
		}
	})
}
