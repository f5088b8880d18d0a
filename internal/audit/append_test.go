package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// Concurrent transactions of two events each, one in three failing after
// its events were appended: on SQLite many of them share one group
// commit (each in its savepoint, the events chained and written at the
// commit); on PostgreSQL each leaves its events in the inbox with its
// COMMIT, and they get their seqs when chained. Either way Append returns
// seq 0 (the seq is given at the commit), the committed transactions have
// their events, the failed ones none, the seqs are gapless, and the chain
// verifies.
func TestAppend_FailedCallersOfABatchLeaveNoEventAndNoGap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		const n = 96
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			seqs = map[int64]string{} // seq returned by Append -> resource id
		)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("n%d", i)
				var got []int64
				errs[i] = e.svc.InLogTx(ctx, e.org, func(tx *store.Tx) error {
					if _, err := tx.ExecContext(ctx, "INSERT INTO notes (id, body) VALUES ($1, 'x')", id); err != nil {
						return err
					}
					got = got[:0]
					for range 2 {
						ev, err := e.svc.Append(ctx, tx, e.org, alice.Event("record.created", Resource{"record", id}, Success, nil))
						if err != nil {
							return err
						}
						got = append(got, ev.Seq)
					}
					if i%3 == 0 {
						return errors.New("fails after its events")
					}
					return nil
				})
				if errs[i] == nil {
					mu.Lock()
					for _, s := range got {
						seqs[s] = id
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		committed := 0
		for i, err := range errs {
			if (err != nil) != (i%3 == 0) {
				t.Fatalf("transaction %d: err %v", i, err)
			}
			if err == nil {
				committed++
			}
		}
		if _, zero := seqs[0]; len(seqs) != 1 || !zero {
			t.Fatalf("Append returned seqs %v, want 0 for every event (given at the commit)", seqs)
		}
		if got := e.count(t, "SELECT COUNT(*) FROM audit_events WHERE seq BETWEEN 1 AND $1", 2*committed); got != 2*committed {
			t.Fatalf("%d events with seq 1..%d, want all", got, 2*committed)
		}
		if got := e.count(t, "SELECT COUNT(*) FROM audit_events"); got != 2*committed {
			t.Fatalf("%d events stored, want %d", got, 2*committed)
		}
		if got := e.count(t, "SELECT COUNT(*) FROM audit_events a JOIN notes ON notes.id = a.resource_id"); got != 2*committed {
			t.Fatalf("%d events belong to a committed note, want %d", got, 2*committed)
		}
		if got := e.count(t, "SELECT COUNT(*) FROM (SELECT resource_id FROM audit_events GROUP BY resource_id HAVING COUNT(*) = 2) AS pairs"); got != committed {
			t.Fatalf("%d notes with both their events, want %d", got, committed)
		}
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != int64(2*committed) || rep.Head.Seq != int64(2*committed) {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

// A store.Tx made by hand (not by InTx) defers nothing: Append writes at
// once, and the chain continues from events written the other ways. On
// PostgreSQL it does not wait for the events still in the inbox: it takes
// the next seq of the chain, and they are chained after it.
func TestAppend_HandMadeTxWritesAtOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.record(t, 3, "record.viewed")
		odb, err := e.st.AcquireOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		sqlTx, err := odb.DB().SQL().BeginTx(ctx, nil)
		if err != nil {
			odb.Release()
			t.Fatal(err)
		}
		tx := &store.Tx{Querier: sqlTx, Now: e.clk.Now().UTC()}
		ev, err := e.svc.Append(ctx, tx, e.org, alice.Event("record.viewed", Resource{"record", "hand"}, Success, nil))
		if err != nil {
			t.Fatal(err)
		}
		var stored int
		if err := sqlTx.QueryRowContext(ctx, "SELECT COUNT(*) FROM audit_segments WHERE seq_start = $1 AND seq_end = $1", ev.Seq).Scan(&stored); err != nil || stored != 1 {
			t.Fatalf("event %d not written inside the transaction before commit (%d rows, %v)", ev.Seq, stored, err)
		}
		if err := sqlTx.Commit(); err != nil {
			t.Fatal(err)
		}
		odb.Release()
		e.record(t, 2, "record.viewed")
		want := int64(4)
		if opts.Driver == store.Postgres {
			want = 1 // the three before it were still in the inbox
		}
		if rep := e.verify(t); !rep.OK || rep.Head.Seq != 6 || rep.EventsChecked != 6 || ev.Seq != want {
			t.Fatalf("verify: %+v (hand-made event seq %d, want %d)", rep, ev.Seq, want)
		}
	})
}
