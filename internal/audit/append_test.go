package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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

// headRowOf reads the org log's head row and where the log ends (head).
func (e *env) headRowOf(t *testing.T) (row int64, end int64) {
	t.Helper()
	ctx := context.Background()
	odb, err := e.st.AcquireOrg(ctx, e.org)
	if err != nil {
		t.Fatal(err)
	}
	defer odb.Release()
	if err := odb.DB().SQL().QueryRowContext(ctx, "SELECT seq FROM audit_head WHERE id = 1").Scan(&row); err != nil {
		t.Fatal(err)
	}
	h, err := readHead(ctx, odb.DB().SQL())
	if err != nil {
		t.Fatal(err)
	}
	return row, h.seq
}

// On SQLite the head row is written with a log's first batch of each
// second, not with every batch, and ChainPending writes it where the
// last batches left it behind; on PostgreSQL chaining writes it with
// every chained event. Either way the log's end is its last event, which
// reads, checkpoints and verify go by.
func TestAppend_HeadRowIsWrittenOnceASecondAndCatchesUp(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		lagging := opts.Driver == store.SQLite
		check := func(wantRow, wantEnd int64) {
			t.Helper()
			if err := e.svc.Chain(ctx, e.org); err != nil {
				t.Fatal(err)
			}
			row, end := e.headRowOf(t)
			if !lagging {
				wantRow = wantEnd
			}
			if row != wantRow || end != wantEnd {
				t.Fatalf("head row at %d and end at %d, want %d and %d", row, end, wantRow, wantEnd)
			}
			page, err := e.svc.Query(ctx, e.org, Filter{}, 100, "")
			if err != nil || len(page.Items) != int(wantEnd) || page.Items[0].Seq != wantEnd {
				t.Fatalf("query: %d events (%v), want %d", len(page.Items), err, wantEnd)
			}
			if rep := e.verify(t); !rep.OK || rep.EventsChecked != wantEnd || rep.Head.Seq != wantEnd {
				t.Fatalf("verify: %+v", rep)
			}
		}
		e.record(t, 1, "record.created") // the first write reads the end and writes the row
		check(1, 1)
		e.record(t, 4, "record.created") // the same second
		check(1, 5)
		e.clk.Add(headRowEvery)
		e.record(t, 1, "record.created")
		check(6, 6)
		e.record(t, 2, "record.created")
		check(6, 8)
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		check(8, 8)
		cp, err := e.svc.Checkpoint(ctx, e.org, OnDemand)
		if err != nil || cp == nil || cp.Seq != 8 {
			t.Fatalf("checkpoint: %+v, %v; want one at seq 8", cp, err)
		}
	})
}

// Two processes (two Services) append to one log in turn: each chains
// from the log's end, though the end it last committed has moved, and
// the seqs stay gapless.
func TestAppend_ChainsFromWhereAnotherProcessLeftTheLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		other, err := New(e.st, e.ring, Options{Now: e.clk.Now, IPKey: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		write := func(svc *Service, n int) {
			for i := range n {
				if err := svc.Record(ctx, e.org, alice.Event("record.updated", Resource{"record", fmt.Sprint(i)}, Success, nil)); err != nil {
					t.Fatal(err)
				}
			}
			if err := svc.Chain(ctx, e.org); err != nil {
				t.Fatal(err)
			}
		}
		write(e.svc, 3)
		write(other, 2)
		write(e.svc, 2)
		write(other, 1)
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			svc := e.svc
			if i%2 == 1 {
				svc = other
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- svc.Record(ctx, e.org, alice.Event("record.updated", Resource{"record", fmt.Sprint(i)}, Success, nil))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != 48 || rep.Head.Seq != 48 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

// failingFlush is deferred work whose Flush fails: the transaction rolls
// back after the log's events were flushed into it.
type failingFlush struct{}

func (failingFlush) Mark() int                              { return 0 }
func (failingFlush) Undo(int)                               {}
func (failingFlush) Flush(context.Context, *store.Tx) error { return errors.New("fails at the commit") }

// A transaction that fails after its events were chained and written
// (another writer's work failing at the commit) leaves the log as it was:
// the next events follow the last committed one.
func TestAppend_ACommitThatFailsAfterTheFlushLeavesNoGap(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.record(t, 3, "record.created")
		type failKey struct{}
		err := e.svc.InLogTx(ctx, e.org, func(tx *store.Tx) error {
			if _, err := e.svc.Append(ctx, tx, e.org, alice.Event("record.created", Resource{"record", "lost"}, Success, nil)); err != nil {
				return err
			}
			if _, ok := tx.Deferred(failKey{}, func() store.Deferred { return failingFlush{} }); !ok {
				return errors.New("no deferred work in InLogTx")
			}
			return nil
		})
		if err == nil {
			t.Fatal("the transaction committed, want its failure")
		}
		e.record(t, 2, "record.created")
		if got := e.count(t, "SELECT COUNT(*) FROM audit_events WHERE resource_id = 'lost'"); got != 0 {
			t.Fatalf("%d events of the failed transaction stored", got)
		}
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != 5 || rep.Head.Seq != 5 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

// Retention that removes every event, while the head row is behind the
// end (SQLite), leaves the log's end at the base: the next events follow
// it, and the log verifies from the signed base.
func TestAppend_FollowsTheBaseWhenRetentionRemovedEveryEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.record(t, 5, "record.created") // one second: on SQLite the row stays at 1
		e.clk.Add(48 * time.Hour)
		removed, err := e.svc.Prune(ctx, e.org, e.clk.Now())
		if err != nil || removed != 5 {
			t.Fatalf("prune: %d removed, %v; want 5", removed, err)
		}
		// The audit.pruned event (6) is in the log; prune it too, then
		// write after an empty log whose base is past the head row.
		e.clk.Add(48 * time.Hour)
		if removed, err := e.svc.Prune(ctx, e.org, e.clk.Now()); err != nil || removed != 1 {
			t.Fatalf("second prune: %d removed, %v; want 1", removed, err)
		}
		e.record(t, 2, "record.created")
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != 3 || rep.Head.Seq != 9 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}
