package audit

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// storedBlooms returns the org log's stored blooms by block, and the
// blooms of its complete blocks as read back from its stored events.
func (e *env) storedBlooms(t *testing.T) (stored, readBack map[int64][]byte) {
	t.Helper()
	stored, readBack = map[int64][]byte{}, map[int64][]byte{}
	e.withEventsTable(t, false, false, func(db *sql.DB) {
		rows, err := db.Query("SELECT block, bits FROM audit_blooms")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var b int64
			var bits []byte
			if err := rows.Scan(&b, &bits); err != nil {
				t.Fatal(err)
			}
			stored[b] = bits
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		var last int64
		err = scanEvents(context.Background(), db, 0, math.MaxInt64, false, func(f *fields, _ []byte) (bool, error) {
			b := blockOf(f.seq)
			if readBack[b] == nil {
				readBack[b] = make(bloom, bloomBytes)
			}
			bloom(readBack[b]).addEvent(f)
			last = f.seq
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		delete(readBack, blockOf(last+1)) // incomplete: no bloom yet
	})
	return stored, readBack
}

// appendConcurrently appends n events of prefix from 8 writers, each
// event in a transaction of its own; every fifth writer's transaction
// also appends an event and then fails, leaving nothing.
func (e *env) appendConcurrently(t *testing.T, svc *Service, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				ev := alice.Event("record.created", Resource{"record", fmt.Sprintf("%s%d", prefix, i)}, Success, nil)
				errs <- svc.Record(ctx, e.org, ev)
				if i%5 == 0 {
					failed := svc.InLogTx(ctx, e.org, func(tx *store.Tx) error {
						if _, err := svc.Append(ctx, tx, e.org, alice.Event("record.deleted", Resource{"record", "gone"}, Success, nil)); err != nil {
							return err
						}
						return errors.New("rolled back")
					})
					if failed == nil {
						errs <- errors.New("a failing transaction committed")
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The blooms of the blocks whose events this process committed are built
// from those events, not read back, and are the blooms a read-back builds;
// events committed by another process leave a gap in what this one saw,
// and their blocks are read back, with blooms that hold them.
func TestIndex_BuildsBloomsFromCommittedEventsAndReadsBackTheRest(t *testing.T) {
	defer func(n int) { chainBatchMax = n }(chainBatchMax)
	chainBatchMax = 100 // PostgreSQL chains in runs that split blocks
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, fresh(t, opts))
		e.appendConcurrently(t, e.svc, "a", 3*blockEvents+40)
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		if n := e.svc.blocksReadBack.Load(); n != 0 {
			t.Fatalf("%d blocks read back, want none: this process committed all their events", n)
		}
		stored, readBack := e.storedBlooms(t)
		if len(stored) != 3 || len(readBack) != 3 {
			t.Fatalf("%d blooms stored and %d complete blocks, want 3 and 3", len(stored), len(readBack))
		}
		for b, bits := range readBack {
			if !bytes.Equal(stored[b], bits) {
				t.Fatalf("block %d: the bloom built from committed events differs from the one read back", b)
			}
		}

		// Another process (a second Service) writes (and, on PostgreSQL,
		// chains) some of block 3's events; this one the rest and block 4.
		other, err := New(e.st, e.ring, Options{Now: e.clk.Now, IPKey: []byte("0123456789abcdef0123456789abcdef")})
		if err != nil {
			t.Fatal(err)
		}
		e.appendConcurrently(t, other, "b", 30)
		if err := other.ChainPending(ctx); err != nil { // PostgreSQL: the other process chains them
			t.Fatal(err)
		}
		e.appendConcurrently(t, e.svc, "c", 2*blockEvents)
		for _, s := range []*Service{e.svc, other} {
			if err := s.ChainPending(ctx); err != nil {
				t.Fatal(err)
			}
		}
		stored, readBack = e.storedBlooms(t)
		if len(readBack) != 5 {
			t.Fatalf("%d complete blocks, want 5", len(readBack))
		}
		for b, bits := range readBack {
			if !bytes.Equal(stored[b], bits) {
				t.Fatalf("block %d: stored bloom %v, want the one read back", b, stored[b] != nil)
			}
		}
		if n := e.svc.blocksReadBack.Load() + other.blocksReadBack.Load(); n == 0 {
			t.Fatal("no block read back, though this process did not commit all of block 3")
		}
		if rep := e.verify(t); !rep.OK {
			t.Fatalf("does not verify: %+v", rep)
		}
	})
}

// The feed holds what it is given only within its bounds: past them a run
// is dropped, which leaves a gap and the block read back, never a bloom
// short of an event.
func TestBloomFeed_DropsRunsPastItsBoundsAndBuildsOnlyGaplessBlocks(t *testing.T) {
	ev := alice.Event("record.created", Resource{"record", "r1"}, Success, nil)
	f, err := prepareEvent(&ev, nil, ev.Time)
	if err != nil {
		t.Fatal(err)
	}
	run := func(n int) [][]byte {
		evs := make([][]byte, n)
		for i := range evs {
			evs[i] = f
		}
		return evs
	}
	var feed bloomFeed
	// A whole block in two runs: built.
	feed.committed("l", 1, run(300))
	feed.committed("l", 301, run(blockEvents-300))
	if got := feed.take("l"); len(got) != 1 || got[0] == nil {
		t.Fatalf("a gapless block: %d blooms, want block 0's", len(got))
	}
	// A gap (seq 2*blockEvents+10 missing): block 2 is not built; block 3,
	// begun at its first seq, is.
	feed.committed("l", blockEvents+1, run(blockEvents))
	feed.committed("l", 2*blockEvents+1, run(9))
	feed.committed("l", 2*blockEvents+11, run(2*blockEvents-10))
	got := feed.take("l")
	if len(got) != 2 || got[1] == nil || got[3] == nil {
		t.Fatalf("blocks built %v, want 1 and 3", keysOf(got))
	}
	// A run that starts inside a block this feed never began: not built.
	feed.committed("m", 5, run(blockEvents))
	if got := feed.take("m"); len(got) != 0 {
		t.Fatalf("blocks built %v from a run begun mid-block, want none", keysOf(got))
	}
	// Past the queue's bound a run is dropped: its block is not built.
	feed.committed("n", 1, run(feedMaxQueued))
	feed.committed("p", 1, run(blockEvents))
	if got := feed.take("p"); len(got) != 0 {
		t.Fatalf("a run past the queue's bound built %v", keysOf(got))
	}
	if got := feed.take("n"); len(got) != feedMaxQueued/blockEvents {
		t.Fatalf("%d blocks built from a full queue, want %d", len(got), feedMaxQueued/blockEvents)
	}
	feed.committed("p", 1, run(blockEvents))
	if got := feed.take("p"); len(got) != 1 {
		t.Fatalf("after the queue emptied: %d blocks built, want 1", len(got))
	}
	// Forgotten logs leave nothing behind.
	feed.committed("q", 1, run(10))
	feed.forget("q")
	feed.committed("q", 11, run(blockEvents))
	if got := feed.take("q"); len(got) != 0 || feed.queued != 0 {
		t.Fatalf("after forget: %v built, %d queued", keysOf(got), feed.queued)
	}
}

func keysOf(m map[int64]bloom) []int64 {
	var ks []int64
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
