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
		// On PostgreSQL, one more committed but not yet chained, in the
		// inbox of migration 6.
		before := len(steps) // the events before the migration
		if opts.Driver == store.Postgres {
			clk.Add(3 * time.Microsecond)
			if _, err := odb.DB().SQL().ExecContext(ctx, `INSERT INTO audit_inbox (id, time, actor_type, actor_id, action, resource_type,
	resource_id, outcome, ip, user_agent, request_id, details) VALUES ($1, $2, 'user', 'u-bob', 'record.viewed', 'record', 'r9', 'success',
	'', 'inbox/1.0', 'req-9', '{}')`, uuid.NewString(), clk.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			before++
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
		total := before + 2
		rep, err := svc.Verify(ctx, org)
		if err != nil || !rep.OK || rep.EventsChecked != int64(total) {
			t.Fatalf("after the migration: %+v, %v; want %d events that verify", rep, err, total)
		}
		p, err := svc.Query(ctx, org, Filter{Outcome: Success}, 100, "")
		if err != nil || len(p.Items) != total {
			t.Fatalf("query by outcome: %d events, %v; want %d", len(p.Items), err, total)
		}
		if opts.Driver == store.Postgres {
			p, err := svc.Query(ctx, org, Filter{Actor: "user:u-bob"}, 100, "")
			if err != nil || len(p.Items) != 1 || p.Items[0].Seq != int64(before) || p.Items[0].UserAgent != "inbox/1.0" {
				t.Fatalf("the event of the inbox: %+v, %v; want it at seq %d", p.Items, err, before)
			}
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
		if err != nil || len(all.Items) != total {
			t.Fatalf("all events: %d, %v", len(all.Items), err)
		}
		since := all.Items[1].Time // the first after the migration, newest first
		w, err := svc.Query(ctx, org, Filter{Since: since}, 100, "")
		if err != nil || len(w.Items) != 2 || w.Items[0].Seq != int64(total) || w.Items[1].Seq != int64(total-1) {
			t.Fatalf("events since %v (an hour after the ones before): %+v, %v; want seqs %d and %d", since, w.Items, err, total, total-1)
		}
		w, err = svc.Query(ctx, org, Filter{Until: since}, 100, "")
		if err != nil || len(w.Items) != before || w.Items[0].Seq != int64(before) {
			t.Fatalf("events until %v: %d from seq %v, %v; want the %d before", since, len(w.Items), w.Items, err, before)
		}
	})
}
