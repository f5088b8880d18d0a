package audit

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// A log written before migrations 4 and 5 keeps every event through them:
// it verifies against the checkpoint signed before, takes new events
// after, its event ids have no unique index any more, and its times no
// index at all (windows are found by bisection).
func TestMigration_LeanIndexesKeepTheLog(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		opts = fresh(t, opts)
		clk := newClock()
		opts.Now = clk.Now
		kekDir := t.TempDir()
		open := func(schemas ...store.Schema) (*store.Store, *Service) {
			st, err := store.Open(ctx, opts, append([]store.Schema{keys.ControlSchema()}, append(schemas, notesSchema())...)...)
			if err != nil {
				t.Fatal(err)
			}
			kek, err := keys.OpenLocalKEK(kekDir)
			if err != nil {
				t.Fatal(err)
			}
			ring, err := keys.NewRing(ctx, st, kek, keys.Options{Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			svc, err := New(st, ring, Options{Now: clk.Now})
			if err != nil {
				t.Fatal(err)
			}
			return st, svc
		}
		upTo3 := func(s store.Schema) store.Schema {
			s.Migrations = s.Migrations[:3]
			return s
		}
		st, svc := open(upTo3(ControlSchema()), upTo3(OrgSchema()))
		org := uuid.NewString()
		if err := st.CreateOrgDB(ctx, org); err != nil {
			t.Fatal(err)
		}
		// Written as a server of migration 3 wrote them: each event in
		// its own transaction, chained at once (a Tx made by hand does;
		// on PostgreSQL, InTx's would need the inbox of migration 6).
		for range 5 {
			odb, err := st.AcquireOrg(ctx, org)
			if err != nil {
				t.Fatal(err)
			}
			sqlTx, err := odb.DB().SQL().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Append(ctx, &store.Tx{Querier: sqlTx, Now: clk.Now()}, org,
				alice.Event("record.created", Resource{"record", "r1"}, Success, nil)); err != nil {
				t.Fatal(err)
			}
			if err := sqlTx.Commit(); err != nil {
				t.Fatal(err)
			}
			odb.Release()
		}
		// Signed as that server signed it (Checkpoint would look for the
		// inbox first).
		odb, err := st.AcquireOrg(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		h, err := readHead(ctx, odb.DB().SQL())
		odb.Release()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.sign(ctx, org, h.seq, h.hash, OnDemand); err != nil {
			t.Fatal(err)
		}
		st.Close()

		st, svc = open(ControlSchema(), OrgSchema())
		defer st.Close()
		clk.Add(time.Hour)
		for range 2 {
			if err := svc.Record(ctx, org, alice.Event("record.updated", Resource{"record", "r1"}, Success, nil)); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := svc.Verify(ctx, org)
		if err != nil || !rep.OK || rep.EventsChecked != 7 {
			t.Fatalf("after the migration: %+v, %v; want 7 events that verify", rep, err)
		}
		p, err := svc.Query(ctx, org, Filter{Outcome: Success}, 100, "")
		if err != nil || len(p.Items) != 7 {
			t.Fatalf("query by outcome: %d events, %v; want 7", len(p.Items), err)
		}
		odb, err = st.AcquireOrg(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		defer odb.Release()
		q := `SELECT COUNT(*) FROM pragma_index_list('audit_events') WHERE "unique" = 1`
		if opts.Driver == store.Postgres {
			q = `SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'audit_events' AND indexname <> 'audit_events_pkey' AND indexdef LIKE '%UNIQUE%'`
		}
		var unique int
		if err := odb.DB().SQL().QueryRowContext(ctx, q).Scan(&unique); err != nil || unique != 0 {
			t.Fatalf("%d unique indexes on audit_events besides the seq (%v), want none", unique, err)
		}
		q = `SELECT COUNT(*) FROM pragma_index_list('audit_events') WHERE name = 'audit_events_time'`
		if opts.Driver == store.Postgres {
			q = `SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'audit_events' AND indexname = 'audit_events_time'`
		}
		var timeIndex int
		if err := odb.DB().SQL().QueryRowContext(ctx, q).Scan(&timeIndex); err != nil || timeIndex != 0 {
			t.Fatalf("the time index is still there (%d, %v)", timeIndex, err)
		}
		// The two events after the migration, by a window between them and
		// the ones before.
		all, err := svc.Query(ctx, org, Filter{}, 100, "")
		if err != nil || len(all.Items) != 7 {
			t.Fatalf("all events: %d, %v", len(all.Items), err)
		}
		since := all.Items[1].Time // the sixth event, newest first
		w, err := svc.Query(ctx, org, Filter{Since: since}, 100, "")
		if err != nil || len(w.Items) != 2 || w.Items[0].Seq != 7 || w.Items[1].Seq != 6 {
			t.Fatalf("events since %v (an hour after the first five): %+v, %v; want seqs 7 and 6", since, w.Items, err)
		}
		w, err = svc.Query(ctx, org, Filter{Until: since}, 100, "")
		if err != nil || len(w.Items) != 5 || w.Items[0].Seq != 5 {
			t.Fatalf("events until %v: %d from seq %v, %v; want the first five", since, len(w.Items), w.Items, err)
		}
	})
}
