package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// Statements that group commits run through ExecOnce and QueryRowOnce are
// kept prepared on SQLite from one batch to the next, and give the same
// results as before: after the table they use changes shape too, and
// beyond the cache's bound. SQL that does not prepare fails its caller
// every time and is never cached. On PostgreSQL they are the plain calls.
func TestInTx_StatementsOfGroupCommitsAreCachedAcrossBatches(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		sqlite := db.Driver() == store.SQLite
		const insert = "INSERT INTO things (id, label) VALUES ($1, $2)"
		const read = "SELECT label FROM things WHERE id = $1"
		put := func(id int, label string) {
			t.Helper()
			err := db.InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.ExecOnce(ctx, insert, id, label); err != nil {
					return err
				}
				var got string
				if err := tx.QueryRowOnce(ctx, read, id).Scan(&got); err != nil {
					return err
				}
				if got != label {
					return fmt.Errorf("read back %q, want %q", got, label)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("put %d: %v", id, err)
			}
		}
		id := 0
		deadline := time.Now().Add(30 * time.Second)
		for {
			id++
			put(id, fmt.Sprintf("label %d", id))
			if !sqlite || (store.CachedStmt(db, insert) && store.CachedStmt(db, read)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the group commit's statements were never cached")
			}
		}
		// The batches' other statements (the savepoints) may still be
		// preparing for the cache.
		store.WaitPrepared(db)
		// Cached statements run on every connection of the pool, and
		// after the table gained a column; no batch prepares them again.
		before := store.BatchPrepares()
		for range 20 {
			id++
			put(id, fmt.Sprintf("label %d", id))
		}
		if _, err := db.SQL().ExecContext(ctx, "ALTER TABLE things ADD COLUMN note TEXT NOT NULL DEFAULT 'none'"); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			id++
			put(id, fmt.Sprintf("label %d", id))
		}
		if got := store.BatchPrepares() - before; got != 0 {
			t.Fatalf("%d statements prepared for a batch alone after they were cached", got)
		}
		var n int
		var note string
		if err := db.SQL().QueryRowContext(ctx, "SELECT COUNT(*), MIN(note) FROM things").Scan(&n, &note); err != nil || n != id || note != "none" {
			t.Fatalf("things: %d rows, note %q, %v; want %d, none", n, note, err, id)
		}

		// SQL that does not prepare: its caller gets the error, each time,
		// and nothing is cached.
		const bad = "INSERT INTO no_such_table (id) VALUES ($1)"
		for i := range 3 {
			err := db.InTx(ctx, func(tx *store.Tx) error { _, err := tx.ExecOnce(ctx, bad, i); return err })
			if err == nil {
				t.Fatal("an insert into a missing table succeeded")
			}
		}
		if store.CachedStmt(db, bad) {
			t.Fatal("a statement that does not prepare was cached")
		}

		// More distinct statements than the cache keeps: each still runs,
		// and the cache stays within its bound.
		for i := range store.MaxCachedStmts + 20 {
			q := fmt.Sprintf("SELECT label FROM things WHERE id = $1 AND %d = %d", i, i)
			err := db.InTx(ctx, func(tx *store.Tx) error {
				var got string
				if err := tx.QueryRowOnce(ctx, q, 1).Scan(&got); err != nil {
					return err
				}
				if got != "label 1" {
					return fmt.Errorf("read %q", got)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("statement %d: %v", i, err)
			}
		}
		// The bound counts the statement that did not prepare: it is not
		// tried again.
		store.WaitPrepared(db)
		if got := store.CachedStmts(db); sqlite && got != store.MaxCachedStmts-1 || !sqlite && got != 0 {
			t.Fatalf("%d statements cached, want %d on SQLite and none on PostgreSQL", got, store.MaxCachedStmts-1)
		}
	})
}
