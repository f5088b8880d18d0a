package audit

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// rawCount counts rows on the org's database as they are, without
// chaining first (e.count chains).
func (e *env) rawCount(t *testing.T, q string) int {
	t.Helper()
	var n int
	e.withEventsTable(t, false, false, func(db *sql.DB) {
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	})
	return n
}

// On PostgreSQL a committed event waits in the log's inbox, outside the
// chain, until it is chained: by ChainPending (a server's every second)
// or by any read of the log, which therefore sees it. On SQLite it is in
// the chain when its transaction commits.
func TestChain_CommittedEventsReachTheChainBeforeAnyRead(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		pg := opts.Driver == store.Postgres
		e.record(t, 3, "record.created")
		inbox, events := e.rawCount(t, "SELECT COUNT(*) FROM audit_inbox"), e.rawCount(t, "SELECT COUNT(*) FROM audit_events")
		if want := map[bool][2]int{true: {3, 0}, false: {0, 3}}[pg]; inbox != want[0] || events != want[1] {
			t.Fatalf("after 3 commits: %d in the inbox, %d in the chain; want %v", inbox, events, want)
		}
		// ChainPending knows the logs this process wrote to.
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		if inbox, events := e.rawCount(t, "SELECT COUNT(*) FROM audit_inbox"), e.rawCount(t, "SELECT COUNT(*) FROM audit_events"); inbox != 0 || events != 3 {
			t.Fatalf("after ChainPending: %d in the inbox, %d in the chain", inbox, events)
		}
		// Each read chains first, even events another process wrote (a
		// second Service over the same databases).
		other, err := New(e.st, e.ring, Options{Now: e.clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		reads := map[string]func() (int64, error){
			"query": func() (int64, error) {
				p, err := e.svc.Query(ctx, e.org, Filter{}, 100, "")
				return int64(len(p.Items)), err
			},
			"export": func() (int64, error) { return e.svc.Export(ctx, e.org, Filter{}, JSONL, &discard{}) },
			"verify": func() (int64, error) {
				rep, err := e.svc.Verify(ctx, e.org)
				if err == nil && !rep.OK {
					err = fmt.Errorf("does not verify: %+v", rep)
				}
				return rep.EventsChecked, err
			},
			"checkpoint": func() (int64, error) {
				cp, err := e.svc.Checkpoint(ctx, e.org, OnDemand)
				if cp == nil {
					return 0, err
				}
				return cp.Seq, err
			},
		}
		want := int64(3)
		for _, name := range []string{"query", "export", "verify", "checkpoint"} {
			if err := other.Record(ctx, e.org, alice.Event("record.updated", Resource{"record", name}, Success, nil)); err != nil {
				t.Fatal(err)
			}
			want++
			got, err := reads[name]()
			if err != nil || got != want {
				t.Fatalf("%s after another process's event: %d events, %v; want %d", name, got, err, want)
			}
		}
		if n := e.rawCount(t, "SELECT COUNT(*) FROM audit_inbox"); n != 0 {
			t.Fatalf("%d events left in the inbox after the reads", n)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Writers and several chainers at once (as on several nodes): every
// committed event is chained exactly once, in a gapless chain that
// verifies, however the inbox is cut into batches.
func TestChain_ConcurrentChainersChainEachEventOnce(t *testing.T) {
	defer func(n int) { chainBatchMax = n }(chainBatchMax)
	chainBatchMax = 7
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers*each+64)
		stop := make(chan struct{})
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					errs <- e.svc.Record(ctx, e.org, alice.Event("record.created", Resource{"record", fmt.Sprintf("w%d-%d", w, i)}, Success, nil))
				}
			}()
		}
		var chainers sync.WaitGroup
		for range 3 {
			chainers.Add(1)
			go func() {
				defer chainers.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if err := e.svc.Chain(ctx, e.org); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(stop)
		chainers.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		const n = writers * each
		if got := e.count(t, "SELECT COUNT(DISTINCT resource_id) FROM audit_events"); got != n {
			t.Fatalf("%d distinct events chained, want %d", got, n)
		}
		if got := e.count(t, "SELECT COUNT(*) FROM audit_events WHERE seq BETWEEN 1 AND $1", n); got != n {
			t.Fatalf("%d events with seq 1..%d, want all and no more", got, n)
		}
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != n || rep.Head.Seq != n {
			t.Fatalf("verify: %+v", rep)
		}
	})
}

// A deleted org's log is forgotten: its checkpoints go, and this process
// no longer counts it among the logs to chain or sign.
func TestForgetLog_DropsCheckpointsAndPendingWork(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.record(t, 2, "record.created")
		if _, err := e.svc.Checkpoint(ctx, e.org, OnDemand); err != nil {
			t.Fatal(err)
		}
		e.record(t, 1, "record.updated") // pending again
		if err := e.svc.ForgetLog(ctx, e.org); err != nil {
			t.Fatal(err)
		}
		cps, _, err := e.svc.checkpoints(ctx, e.org)
		if err != nil || len(cps) != 0 {
			t.Fatalf("checkpoints after ForgetLog: %v, %v", cps, err)
		}
		e.svc.mu.Lock()
		dirty := e.svc.dirty[e.org]
		_, unchained := e.svc.unchained[e.org]
		_, head := e.svc.heads[e.org]
		_, headRow := e.svc.headRows[e.org]
		e.svc.mu.Unlock()
		if dirty || unchained || head || headRow {
			t.Fatalf("the forgotten log is still pending: to sign %v, to chain %v, a head kept %v, a head row kept %v", dirty, unchained, head, headRow)
		}
	})
}

// A log's events are chained in the order they were appended, on
// PostgreSQL too, where the inbox has no index to keep them in: events
// appended at falling times (each transaction's own time, as a late
// transaction has), in batches smaller than the inbox, keep their order.
func TestChain_EventsAreChainedInTheOrderAppended(t *testing.T) {
	defer func(n int) { chainBatchMax = n }(chainBatchMax)
	chainBatchMax = 3
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newEnv(t, opts)
		base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var times []time.Time
		for i := range 20 {
			times = append(times, base.Add(-time.Duration(i)*time.Second))
		}
		e.appendAt(t, times, func(i int) Event {
			return alice.Event("record.created", Resource{"record", fmt.Sprintf("r%02d", i)}, Success, nil)
		})
		p, err := e.svc.Query(context.Background(), e.org, Filter{}, 100, "")
		if err != nil || len(p.Items) != len(times) {
			t.Fatalf("query: %d events, %v; want %d", len(p.Items), err, len(times))
		}
		for i, ev := range p.Items { // newest seq first
			want := fmt.Sprintf("r%02d", len(times)-1-i)
			if ev.Resource.ID != want || ev.Seq != int64(len(times)-i) {
				t.Fatalf("item %d: seq %d %s at %v, want seq %d %s", i, ev.Seq, ev.Resource.ID, ev.Time, len(times)-i, want)
			}
		}
		if rep := e.verify(t); !rep.OK {
			t.Fatalf("does not verify: %+v", rep)
		}
	})
}

// Chaining vacuums a log's inbox after taking inboxVacuumRows events out
// of it, so that the dead rows they leave do not pile up until autovacuum.
func TestChain_VacuumsTheInboxAfterManyEvents(t *testing.T) {
	defer func(n int, v int64) { chainBatchMax, inboxVacuumRows = n, v }(chainBatchMax, inboxVacuumRows)
	chainBatchMax, inboxVacuumRows = 7, 20
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		lastVacuum := func() (vacuumed bool) {
			if opts.Driver != store.Postgres {
				return false
			}
			e.withEventsTable(t, false, false, func(db *sql.DB) {
				if err := db.QueryRow("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'audit_inbox'").Scan(&vacuumed); err != nil {
					t.Fatal(err)
				}
			})
			return vacuumed
		}
		e.record(t, 15, "record.created")
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		if lastVacuum() {
			t.Fatal("the inbox was vacuumed after 15 events taken, before 20")
		}
		e.record(t, 10, "record.created")
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		if want := opts.Driver == store.Postgres; lastVacuum() != want {
			t.Fatalf("vacuumed after 25 events taken: %v, want %v", !want, want)
		}
		if inbox, events := e.rawCount(t, "SELECT COUNT(*) FROM audit_inbox"), e.rawCount(t, "SELECT COUNT(*) FROM audit_events"); inbox != 0 || events != 25 {
			t.Fatalf("%d in the inbox, %d in the chain; want 0 and 25", inbox, events)
		}
	})
}

// On PostgreSQL segments (and blooms) are compressed with LZ4, when the
// server has it, instead of pglz: chaining inserts every event in a
// segment, and pglz took four times as long.
func TestSegments_AreCompressedWithLZ4OnPostgres(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		if opts.Driver != store.Postgres {
			t.Skip("SQLite stores blobs as they are")
		}
		e := newEnv(t, opts)
		times := make([]time.Time, 60)
		for i := range times {
			times[i] = time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC)
		}
		e.appendAt(t, times, func(i int) Event {
			return alice.Event("record.created", Resource{"record", fmt.Sprintf("r%02d", i)}, Success, map[string]string{"size": "96"})
		})
		if rep := e.verify(t); !rep.OK || rep.EventsChecked != 60 {
			t.Fatalf("verify: %+v", rep)
		}
		e.withEventsTable(t, false, false, func(db *sql.DB) {
			if _, err := db.Exec("CREATE TEMP TABLE lz4_probe (b bytea COMPRESSION lz4)"); err != nil {
				t.Skipf("this server has no LZ4: %v", err)
			}
			for _, col := range [][2]string{{"audit_segments", "events"}, {"audit_blooms", "bits"}} {
				var method string
				if err := db.QueryRow("SELECT attcompression::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2", col[0], col[1]).Scan(&method); err != nil || method != "l" {
					t.Fatalf("%s.%s compression %q, %v; want l (lz4)", col[0], col[1], method, err)
				}
			}
			var stored sql.NullString
			if err := db.QueryRow("SELECT pg_column_compression(events) FROM audit_segments ORDER BY length(events) DESC LIMIT 1").Scan(&stored); err != nil || stored.String != "lz4" {
				t.Fatalf("the largest segment is stored with %q, %v; want lz4", stored.String, err)
			}
		})
	})
}

// Chaining takes the inbox's events by n, the order they were appended
// in, not the order the heap holds them in: rows stored in the reverse
// of their n are chained by n, across batches.
func TestChain_TakesTheInboxByN(t *testing.T) {
	defer func(n int) { chainBatchMax = n }(chainBatchMax)
	chainBatchMax = 3
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		if opts.Driver != store.Postgres {
			t.Skip("SQLite chains at the commit; its inbox stays empty")
		}
		ctx := context.Background()
		e := newEnv(t, opts)
		const n = 10
		e.withEventsTable(t, false, false, func(db *sql.DB) {
			for i := n; i >= 1; i-- { // stored last first
				ev := alice.Event("record.created", Resource{"record", fmt.Sprintf("r%02d", i)}, Success, nil)
				f, err := prepareEvent(&ev, nil, time.Date(2026, 3, 1, 12, 0, i, 0, time.UTC))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec("INSERT INTO audit_inbox (n, fields) VALUES ($1, $2)", i, f); err != nil {
					t.Fatal(err)
				}
			}
		})
		if err := e.svc.Chain(ctx, e.org); err != nil {
			t.Fatal(err)
		}
		p, err := e.svc.Query(ctx, e.org, Filter{}, 100, "")
		if err != nil || len(p.Items) != n {
			t.Fatalf("query: %d events, %v; want %d", len(p.Items), err, n)
		}
		for i, ev := range p.Items { // newest seq first
			if want := fmt.Sprintf("r%02d", n-i); ev.Resource.ID != want || ev.Seq != int64(n-i) {
				t.Fatalf("item %d: seq %d %s, want seq %d %s", i, ev.Seq, ev.Resource.ID, n-i, want)
			}
		}
		if rep := e.verify(t); !rep.OK {
			t.Fatalf("does not verify: %+v", rep)
		}
	})
}

// ChainDue chains a log once this process appended a segment's worth of
// events to it, or once it has waited ChainMaxWait; until then its events
// wait (on PostgreSQL in the inbox; on SQLite, chained at their commit,
// their blooms wait). ChainPending chains every log at once.
func TestChainDue_WaitsForASegmentOrTheLongestWait(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		waiting := func() int { // events not yet chained, or the log's mark on SQLite
			if opts.Driver == store.Postgres {
				return e.rawCount(t, "SELECT COUNT(*) FROM audit_inbox")
			}
			e.svc.mu.Lock()
			defer e.svc.mu.Unlock()
			return e.svc.unchained[e.org]
		}
		e.record(t, 10, "record.created")
		if err := e.svc.ChainDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := waiting(); got != 10 {
			t.Fatalf("after ChainDue of 10 events: %d waiting, want 10 (not due)", got)
		}
		e.clk.Add(ChainMaxWait - time.Second)
		if err := e.svc.ChainDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := waiting(); got != 10 {
			t.Fatalf("before ChainMaxWait: %d waiting, want 10", got)
		}
		e.clk.Add(time.Second)
		if err := e.svc.ChainDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := waiting(); got != 0 {
			t.Fatalf("after ChainMaxWait: %d waiting, want 0", got)
		}
		// A segment's worth is due at once, its block's bloom built.
		e.record(t, blockEvents-10, "record.read")
		if err := e.svc.ChainDue(ctx); err != nil {
			t.Fatal(err)
		}
		if got := waiting(); got != 0 {
			t.Fatalf("after ChainDue of %d events: %d waiting, want 0", blockEvents-10, got)
		}
		if got := e.rawCount(t, "SELECT COUNT(*) FROM audit_blooms"); got != 1 {
			t.Fatalf("%d blooms, want 1", got)
		}
		// ChainPending does not wait.
		e.record(t, 3, "record.read")
		if err := e.svc.ChainPending(ctx); err != nil {
			t.Fatal(err)
		}
		if got := waiting(); got != 0 {
			t.Fatalf("after ChainPending: %d waiting, want 0", got)
		}
		if rep := e.verify(t); !rep.OK || rep.Head.Seq != blockEvents+3 {
			t.Fatalf("verify: %+v", rep)
		}
	})
}
