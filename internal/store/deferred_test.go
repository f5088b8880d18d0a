package store_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

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

// Work deferred by concurrent callers is written just before their
// commit: a caller that fails takes its deferred work with it (even when
// it was the first to make the Deferred), the others' is committed and
// visible when InTx returns; a Flush that fails fails the transaction.
func TestInTx_DeferredWorkFollowsItsCaller(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		const n = 120
		var wg sync.WaitGroup
		var flushes atomic.Int64
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = db.InTx(ctx, func(tx *store.Tx) error {
					d, ok := tx.Deferred(rowsKey{}, func() store.Deferred { return &deferredRows{flushed: &flushes} })
					if !ok {
						return errors.New("InTx's Tx defers nothing")
					}
					d.(*deferredRows).ids = append(d.(*deferredRows).ids, i, 1000+i)
					if i%4 == 0 {
						return errors.New("fails after deferring")
					}
					return nil
				})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if (err != nil) != (i%4 == 0) {
				t.Fatalf("caller %d: %v", i, err)
			}
			var k int
			if err := db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id IN ($1, $2)", i, 1000+i).Scan(&k); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 0, false: 2}[i%4 == 0]; k != want {
				t.Fatalf("caller %d: %d of its deferred rows stored, want %d", i, k, want)
			}
		}
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
