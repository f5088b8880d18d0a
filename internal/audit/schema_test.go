package audit

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// A log written before migration 4 keeps every event through it: it
// verifies against the checkpoint signed before, takes new events after,
// and its event ids have no unique index any more.
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
		for range 5 {
			if err := svc.Record(ctx, org, alice.Event("record.created", Resource{"record", "r1"}, Success, nil)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.Checkpoint(ctx, org, OnDemand); err != nil {
			t.Fatal(err)
		}
		st.Close()

		st, svc = open(ControlSchema(), OrgSchema())
		defer st.Close()
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
		odb, err := st.AcquireOrg(ctx, org)
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
	})
}
