package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// A log written before migration 7, one row per event, keeps every event
// through it: each row becomes a segment of its own whose record hashes
// as the row did (its time turned into the hashed form in SQL, with and
// without a fraction of a second), so the log verifies against the
// checkpoint signed before, takes new events after, and answers queries,
// with its table of rows gone.
func TestMigration_SegmentsKeepTheLog(t *testing.T) {
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
		upTo6 := func(s store.Schema) store.Schema {
			s.Migrations = s.Migrations[:6]
			return s
		}
		st, svc := open(upTo6(ControlSchema()), upTo6(OrgSchema()))
		org := uuid.NewString()
		if err := st.CreateOrgDB(ctx, org); err != nil {
			t.Fatal(err)
		}
		// Written as a server of migration 6 wrote them by hand: a row per
		// event, its previous hash and hash, the head.
		odb, err := st.AcquireOrg(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		prev := genesis(org)
		steps := []time.Duration{0, 1500 * time.Microsecond, 123456789 * time.Nanosecond, time.Second, 7 * time.Microsecond}
		for i, step := range steps {
			clk.Add(step)
			e := alice.Event("record.created", Resource{"record", fmt.Sprintf("r%d", i)}, Success, map[string]string{"i": fmt.Sprint(i)})
			details, err := e.normalize(nil)
			if err != nil {
				t.Fatal(err)
			}
			e.Seq, e.ID, e.Time = int64(i+1), uuid.NewString(), clk.Now().UTC()
			hash, _ := chainHash(nil, org, prev, &e, details)
			if _, err := odb.DB().SQL().ExecContext(ctx, `INSERT INTO audit_events (seq, id, time, actor_type, actor_id, action, resource_type,
	resource_id, outcome, ip, user_agent, request_id, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
				e.Seq, e.ID, e.Time, e.Actor.Type, e.Actor.ID, e.Action, e.Resource.Type, e.Resource.ID, e.Outcome, e.IP, e.UserAgent,
				e.RequestID, string(details), prev, hash); err != nil {
				t.Fatal(err)
			}
			if _, err := odb.DB().SQL().ExecContext(ctx, "UPDATE audit_head SET seq = $1, hash = $2", e.Seq, hash); err != nil {
				t.Fatal(err)
			}
			prev = hash
		}
		odb.Release()
		if _, err := svc.sign(ctx, org, int64(len(steps)), prev, OnDemand); err != nil {
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
		q := `SELECT COUNT(*) FROM sqlite_master WHERE name = 'audit_events'`
		if opts.Driver == store.Postgres {
			q = `SELECT COUNT(*) FROM pg_tables WHERE tablename = 'audit_events'`
		}
		var tables int
		if err := odb.DB().SQL().QueryRowContext(ctx, q).Scan(&tables); err != nil || tables != 0 {
			t.Fatalf("the table of rows is still there (%d, %v)", tables, err)
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
