package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// Concurrent transactions (grouped into shared commits on SQLite) keep
// their own outcome: the ones that fail or panic leave nothing, the others
// are all committed and visible when InTx returns, and a caller whose
// context is cancelled before its turn runs nothing.
func TestInTx_ConcurrentCallersKeepTheirOwnOutcome(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st := open(t, opts, controlSchema(1))
		db := st.Control()
		const n = 200
		boom := errors.New("boom")
		var wg sync.WaitGroup
		errs := make([]error, n)
		panics := make([]any, n)
		visible := make([]bool, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { panics[i] = recover() }()
				errs[i] = db.InTx(ctx, func(tx *store.Tx) error {
					// Two statements, so that a failure after the first
					// must be undone.
					if _, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, 'a')", i); err != nil {
						return err
					}
					switch i % 10 {
					case 3:
						return boom
					case 7:
						panic(fmt.Sprintf("panic %d", i))
					case 9:
						// A constraint violation of one caller.
						_, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, 'dup')", i)
						return err
					}
					_, err := tx.ExecContext(ctx, "INSERT INTO things (id, label) VALUES ($1, 'b')", 10000+i)
					return err
				})
				if errs[i] == nil {
					var k int
					_ = db.SQL().QueryRow("SELECT COUNT(*) FROM things WHERE id IN ($1, $2)", i, 10000+i).Scan(&k)
					visible[i] = k == 2
				}
			}()
		}
		wg.Wait()
		for i := range n {
			switch i % 10 {
			case 3:
				if !errors.Is(errs[i], boom) {
					t.Errorf("caller %d: %v, want its own error", i, errs[i])
				}
			case 7:
				if panics[i] != fmt.Sprintf("panic %d", i) {
					t.Errorf("caller %d: panic %v, want its own panic", i, panics[i])
				}
			case 9:
				if !store.IsUniqueViolation(errs[i]) {
					t.Errorf("caller %d: %v, want a unique violation", i, errs[i])
				}
			default:
				if errs[i] != nil || panics[i] != nil || !visible[i] {
					t.Errorf("caller %d: err %v panic %v visible %v; want committed and visible on return", i, errs[i], panics[i], visible[i])
				}
			}
		}
		if got, want := count(t, db, "SELECT COUNT(*) FROM things"), 2*(n-3*n/10); got != want {
			t.Fatalf("rows = %d, want %d (two per successful caller, none of the others)", got, want)
		}

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		ran := false
		if err := db.InTx(cctx, func(*store.Tx) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
			t.Fatalf("cancelled caller: %v, ran %v; want context.Canceled without running", err, ran)
		}
	})
}
