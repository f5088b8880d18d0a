package keys

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// notesSchema is an org table of sealed values, as a capability package
// would have: the associated data depends on the row's kind.
func notesSchema() store.Schema {
	return store.Schema{Name: "notes", Scope: store.OrgScope, Migrations: []store.Migration{{
		Version:  1,
		Name:     "notes",
		SQLite:   "CREATE TABLE notes (id TEXT PRIMARY KEY, kind TEXT NOT NULL, body BLOB)",
		Postgres: "CREATE TABLE notes (id TEXT PRIMARY KEY, kind TEXT NOT NULL, body BYTEA)",
	}}}
}

var notesColumn = Sealed{Name: "notes.body", Table: "notes", Key: "id", Column: "body", ADColumn: "kind",
	AD: func(key, kind string) AD { return AD{Table: "notes", RowID: key, Field: kind} }}

// versionsOf counts the notes by the data key version their body names.
func versionsOf(t *testing.T, db *store.DB) map[int]int {
	t.Helper()
	rows, err := db.SQL().Query("SELECT body FROM notes WHERE body IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int]int{}
	for rows.Next() {
		var ct []byte
		if err := rows.Scan(&ct); err != nil {
			t.Fatal(err)
		}
		v, err := parseHeader(ct)
		if err != nil {
			v = -1
		}
		got[v]++
	}
	return got
}

func TestReencrypt_RewritesOldValuesResumablyUnderALease(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st, err := store.Open(ctx, opts, ControlSchema(), OrgSchema(), notesSchema())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		clk := newClock()
		rec := &recorder{}
		r := newRing(t, st, newLocalKEK(t), Options{Now: clk.Now, Events: rec})
		org := newOrg(t, st, r)
		if err := st.CreateOrgDB(ctx, org); err != nil {
			t.Fatal(err)
		}
		odb, err := st.AcquireOrg(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		defer odb.Release()
		db := odb.DB()

		const n = 450
		plain := map[string]string{}
		for i := range n {
			id, kind := fmt.Sprintf("n%04d", i), []string{"title", "text"}[i%2]
			plain[id] = fmt.Sprintf("note %d", i)
			ct, err := r.Seal(ctx, org, notesColumn.AD(id, kind), []byte(plain[id]))
			if err != nil {
				t.Fatal(err)
			}
			if id == "n0440" {
				ct[len(ct)-1] ^= 1 // damaged: must be counted and left alone
			}
			if _, err := db.SQL().Exec("INSERT INTO notes (id, kind, body) VALUES ($1, $2, $3)", id, kind, ct); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.SQL().Exec("INSERT INTO notes (id, kind, body) VALUES ('n9999', 'text', NULL)"); err != nil {
			t.Fatal(err)
		}

		if _, err := r.RotateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		x1, err := NewReencryptor(r, []Sealed{notesColumn})
		if err != nil {
			t.Fatal(err)
		}
		x1.Batch = 100
		jobs, err := x1.Jobs(ctx)
		if err != nil || len(jobs) != 1 || jobs[0].OrgID != org || jobs[0].Target != 2 || jobs[0].Finished != nil {
			t.Fatalf("after the rotation: jobs %+v, %v; want one unfinished job for %s to version 2", jobs, err, org)
		}

		// A run stopped after two batches (a crash, or Ctrl-C).
		cctx, cancel := context.WithCancel(ctx)
		batches := 0
		_, err = x1.Run(cctx, org, func(p Progress) {
			if batches++; batches == 2 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("stopped run: %v, want context.Canceled", err)
		}
		if got := versionsOf(t, db); got[1] != n-200 || got[2] != 200 {
			t.Fatalf("after two batches of 100: versions %v, want 200 at v2 and %d at v1", got, n-200)
		}

		// A stopped run gives up its lease; a process that dies holds it
		// until it runs out. Another process finds the job leased, then
		// continues from the saved position.
		x2, err := NewReencryptor(r, []Sealed{notesColumn})
		if err != nil {
			t.Fatal(err)
		}
		x2.Batch = 100
		if _, err := x2.claim(ctx, org); err != nil {
			t.Fatalf("the lease of a stopped run was not given up: %v", err)
		}
		x2.release(ctx, org)
		if _, err := x1.claim(ctx, org); err != nil { // x1 takes it again, then dies
			t.Fatal(err)
		}
		if _, err := x2.Run(ctx, org, nil); !IsLeased(err) {
			t.Fatalf("run while another holds the lease: %v, want a lease error", err)
		}
		clk.Add(2 * time.Minute)
		var seen []Progress
		p, err := x2.Run(ctx, org, func(p Progress) { seen = append(seen, p) })
		if err != nil {
			t.Fatal(err)
		}
		if !p.Finished || p.Total != n+1 || p.Scanned != n+1 || p.Rewrote != n-200-1 || p.Failed != 1 || p.Target != 2 {
			t.Fatalf("resumed run: %+v; want finished, %d of %d scanned, %d rewritten, 1 failed", p, n+1, n+1, n-200-1)
		}
		if len(seen) == 0 || seen[0].Scanned != 300 {
			t.Fatalf("resumed run's first progress %+v: want it to start from the 200 scanned before, plus a batch", seen)
		}
		for i := 1; i < len(seen); i++ {
			if seen[i].Scanned < seen[i-1].Scanned {
				t.Fatalf("progress went back: %+v then %+v", seen[i-1], seen[i])
			}
		}
		if got := versionsOf(t, db); got[2] != n-1 || got[1] != 1 {
			t.Fatalf("after the run: versions %v, want %d at v2 and the damaged one at v1", got, n-1)
		}
		checkNotes(t, r, org, db, plain)
		if !contains(rec.actions(org), ActionReencrypted) {
			t.Fatalf("events %v, want %s", rec.actions(org), ActionReencrypted)
		}
		jobs, _ = x2.Jobs(ctx)
		if len(jobs) != 1 || jobs[0].Finished == nil || jobs[0].Rewritten != n-1 || jobs[0].FailedRows != 1 {
			t.Fatalf("job after the runs: %+v; want finished with %d rewritten (both runs) and 1 failed", jobs, n-1)
		}
		if p, err := x1.Run(ctx, org, nil); err != nil || !p.Finished || p.Rewrote != 0 {
			t.Fatalf("run of a finished job: %+v, %v; want finished with nothing done", p, err)
		}

		// A second rotation starts over towards version 3; the background
		// runner takes it up.
		if _, err := r.RotateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := x1.RunPending(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if got := versionsOf(t, db); got[3] != n-1 {
			t.Fatalf("after the second rotation: versions %v, want %d at v3", got, n-1)
		}
		checkNotes(t, r, org, db, plain)
	})
}

// checkNotes opens every note but the damaged one and compares it.
func checkNotes(t *testing.T, r *Ring, org string, db *store.DB, plain map[string]string) {
	t.Helper()
	rows, err := db.SQL().Query("SELECT id, kind, body FROM notes WHERE body IS NOT NULL AND id <> 'n0440'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, kind string
		var ct []byte
		if err := rows.Scan(&id, &kind, &ct); err != nil {
			t.Fatal(err)
		}
		pt, err := r.Open(context.Background(), org, notesColumn.AD(id, kind), ct)
		if err != nil || string(pt) != plain[id] {
			t.Fatalf("note %s opens to %q, %v; want %q", id, pt, err, plain[id])
		}
	}
}

func TestReencrypt_DeletedOrgFinishesItsJob(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		st, err := store.Open(ctx, opts, ControlSchema(), OrgSchema(), notesSchema())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		r := newRing(t, st, newLocalKEK(t), Options{})
		org := newOrg(t, st, r)
		if err := st.CreateOrgDB(ctx, org); err != nil {
			t.Fatal(err)
		}
		if _, err := r.RotateOrg(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := st.DropOrgDB(ctx, org); err != nil {
			t.Fatal(err)
		}
		if err := r.DestroyOrgKeys(ctx, org); err != nil {
			t.Fatal(err)
		}
		x, err := NewReencryptor(r, []Sealed{notesColumn})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.RunPending(ctx, nil); err != nil {
			t.Fatalf("pending job of a deleted org: %v", err)
		}
		if jobs, err := x.Jobs(ctx); err != nil || len(jobs) != 0 {
			t.Fatalf("jobs after the org's deletion: %+v, %v; want none", jobs, err)
		}
	})
}

func TestNewReencryptor_RefusesBadColumns(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		r := newRing(t, openStore(t, opts), newLocalKEK(t), Options{})
		ad := func(k, _ string) AD { return AD{"t", k, "f"} }
		for _, c := range [][]Sealed{
			{{Name: "x", Table: "notes; DROP TABLE notes", Key: "id", Column: "body", AD: ad}},
			{{Name: "x", Table: "notes", Key: "id", Column: "body"}},
			{{Name: "x", Table: "notes", Key: "id", Column: "body", AD: ad}, {Name: "x", Table: "n2", Key: "id", Column: "b", AD: ad}},
		} {
			if _, err := NewReencryptor(r, c); err == nil {
				t.Errorf("NewReencryptor(%+v) accepted", c)
			}
		}
	})
}
