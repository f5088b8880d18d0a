package org_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"bulwark/internal/apperr"
	"bulwark/internal/org"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

func openStore(t *testing.T, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), opts, org.ControlSchema(), org.OrgSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newService(t *testing.T, opts store.Options) (*org.Service, *store.Store) {
	t.Helper()
	st := openStore(t, opts)
	return org.NewService(st, nil), st
}

func mustCreate(t *testing.T, svc *org.Service, name, slug string) org.Org {
	t.Helper()
	o, err := svc.Create(context.Background(), name, slug)
	if err != nil {
		t.Fatalf("Create(%q, %q): %v", name, slug, err)
	}
	return o
}

func TestCreate_MakesActiveOrgWithItsOwnDatabase(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		svc, _ := newService(t, opts)
		o := mustCreate(t, svc, "  Acme Corp  ", "acme")
		id, err := uuid.Parse(o.ID)
		if err != nil || id.Version() != 7 || id.String() != o.ID {
			t.Fatalf("ID %q is not a canonical UUIDv7 (%v)", o.ID, err)
		}
		if o.Name != "Acme Corp" || o.Slug != "acme" || o.Status != org.Active {
			t.Fatalf("created %+v, want name trimmed, slug acme, active", o)
		}
		if o.CreatedAt.IsZero() || !o.CreatedAt.Equal(o.UpdatedAt) || o.CreatedAt.Location() != time.UTC {
			t.Fatalf("CreatedAt %v, UpdatedAt %v: want equal UTC times", o.CreatedAt, o.UpdatedAt)
		}
		if !storetest.OrgDBExists(t, opts, o.ID) {
			t.Fatal("org database does not exist after Create")
		}
		got, err := svc.Get(context.Background(), o.ID)
		if err != nil || got != o {
			t.Fatalf("Get = %+v, %v; want %+v", got, err, o)
		}
	})
}

func TestCreate_RefusesTakenSlugAndBadInput(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, _ := newService(t, opts)
		mustCreate(t, svc, "Acme", "acme")
		_, err := svc.Create(ctx, "Other Acme", "acme")
		if apperr.CodeOf(err) != apperr.Conflict {
			t.Fatalf("Create with a taken slug = %v, want conflict", err)
		}
		tests := []struct {
			name, orgName, slug string
			fields              []string
		}{
			{"empty name", "  ", "fine-slug", []string{"name"}},
			{"name too long", strings.Repeat("x", 101), "fine-slug", []string{"name"}},
			{"control character in name", "a\x00b", "fine-slug", []string{"name"}},
			{"bad slug", "Fine", "Bad Slug", []string{"slug"}},
			{"both bad", "", "", []string{"name", "slug"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := svc.Create(ctx, tt.orgName, tt.slug)
				if apperr.CodeOf(err) != apperr.Invalid {
					t.Fatalf("Create = %v, want invalid", err)
				}
				var got []string
				for _, f := range apperr.FieldsOf(err) {
					got = append(got, f.Field)
				}
				if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
					t.Fatalf("fields = %v, want %v", got, tt.fields)
				}
			})
		}
		orgs, err := svc.List(ctx)
		if err != nil || len(orgs) != 1 {
			t.Fatalf("List = %d orgs, %v; want only the first one (refused creates leave nothing)", len(orgs), err)
		}
	})
}

func TestValidateSlug(t *testing.T) {
	tests := []struct {
		slug string
		code string // "" means valid
	}{
		{"acme", ""},
		{"acme-corp-2", ""},
		{"abc", ""},
		{strings.Repeat("a", 40), ""},
		{"", "required"},
		{"ab", "too_short"},
		{strings.Repeat("a", 41), "too_long"},
		{"Acme", "invalid_chars"},
		{"ACME", "invalid_chars"},
		{"acme_corp", "invalid_chars"},
		{"acme.corp", "invalid_chars"},
		{"acme corp", "invalid_chars"},
		{"acmé", "invalid_chars"},
		{"../etc", "invalid_chars"},
		{"1acme", "invalid_start"},
		{"-acme", "invalid_start"},
		{"acme-", "invalid_end"},
		{"ac--me", "double_dash"},
		{"api", "reserved"},
		{"admin", "reserved"},
		{"ops", "reserved"},
		{"www", "reserved"},
		{"login", "reserved"},
		{"healthz", "reserved"},
		{"settings", "reserved"},
		{"abcdef01-2345-7678-8abc-def012345678", "looks_like_id"},
	}
	for _, tt := range tests {
		t.Run(tt.slug, func(t *testing.T) {
			err := org.ValidateSlug(tt.slug)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("ValidateSlug(%q) = %v, want valid", tt.slug, err)
				}
				return
			}
			fields := apperr.FieldsOf(err)
			if apperr.CodeOf(err) != apperr.Invalid || len(fields) != 1 || fields[0].Field != "slug" || fields[0].Code != tt.code {
				t.Fatalf("ValidateSlug(%q) = %v %+v, want invalid slug/%s", tt.slug, err, fields, tt.code)
			}
		})
	}
}

func TestListAndGet_ByIDAndSlug(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, _ := newService(t, opts)
		c := mustCreate(t, svc, "Charlie", "charlie")
		a := mustCreate(t, svc, "Alpha", "alpha")
		b := mustCreate(t, svc, "Bravo", "bravo")
		orgs, err := svc.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(orgs) != 3 || orgs[0] != a || orgs[1] != b || orgs[2] != c {
			t.Fatalf("List = %+v, want alpha, bravo, charlie", orgs)
		}
		for _, key := range []string{b.ID, b.Slug} {
			got, err := svc.Get(ctx, key)
			if err != nil || got != b {
				t.Fatalf("Get(%q) = %+v, %v; want bravo", key, got, err)
			}
		}
		for _, key := range []string{"nobody", "0190f5a0-0000-7000-8000-00000000000a", "", "'; DROP TABLE orgs; --"} {
			if _, err := svc.Get(ctx, key); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("Get(%q) = %v, want not_found", key, err)
			}
		}
	})
}

func TestSuspend_RefusesOpenAndEvictsHandle_ResumeOpensAgain(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, st := newService(t, opts)
		o := mustCreate(t, svc, "Acme", "acme")
		db, err := svc.Open(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		db.Release()
		if n := st.OpenOrgs(); n != 1 {
			t.Fatalf("OpenOrgs = %d, want 1", n)
		}

		s, err := svc.Suspend(ctx, o.ID)
		if err != nil || s.Status != org.Suspended || !s.UpdatedAt.After(o.UpdatedAt) && !s.UpdatedAt.Equal(o.UpdatedAt) {
			t.Fatalf("Suspend = %+v, %v", s, err)
		}
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs after Suspend = %d, want 0 (handle evicted)", n)
		}
		for _, key := range []string{o.ID, o.Slug} {
			_, err := svc.Open(ctx, key)
			if apperr.CodeOf(err) != apperr.Forbidden || apperr.MessageOf(err) != "org is suspended" {
				t.Fatalf("Open(%q) of a suspended org = %v, want forbidden \"org is suspended\"", key, err)
			}
		}
		if got, _ := svc.Get(ctx, o.ID); got.Status != org.Suspended {
			t.Fatalf("Get after Suspend: status %q", got.Status)
		}

		if r, err := svc.Resume(ctx, "acme"); err != nil || r.Status != org.Active {
			t.Fatalf("Resume = %+v, %v", r, err)
		}
		db, err = svc.Open(ctx, o.ID)
		if err != nil {
			t.Fatalf("Open after Resume: %v", err)
		}
		db.Release()
	})
}

func TestDelete_RemovesOrgAndDatabaseAndFreesSlug(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, st := newService(t, opts)
		o := mustCreate(t, svc, "Acme", "acme")
		db, err := svc.Open(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		db.Release()

		// A failing hook stops the deletion.
		var seen []string
		failing := true
		svc.OnDelete(func(ctx context.Context, d org.Org) error {
			seen = append(seen, d.ID)
			if failing {
				return apperr.Errorf(apperr.Unavailable, "key service down")
			}
			return nil
		})
		if _, err := svc.Delete(ctx, "acme"); apperr.CodeOf(err) != apperr.Unavailable {
			t.Fatalf("Delete with a failing hook = %v, want the hook's unavailable", err)
		}
		if _, err := svc.Get(ctx, o.ID); err != nil || !storetest.OrgDBExists(t, opts, o.ID) {
			t.Fatalf("org or database gone after a refused Delete: %v", err)
		}

		failing = false
		d, err := svc.Delete(ctx, "acme")
		if err != nil || d.Status != org.Deleted {
			t.Fatalf("Delete = %+v, %v", d, err)
		}
		if len(seen) != 2 || seen[1] != o.ID {
			t.Fatalf("hooks saw %v, want the org twice", seen)
		}
		if _, err := svc.Get(ctx, o.ID); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("Get after Delete = %v, want not_found", err)
		}
		if storetest.OrgDBExists(t, opts, o.ID) {
			t.Fatal("org database still exists after Delete")
		}
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs after Delete = %d, want 0", n)
		}
		for _, key := range []string{o.ID, o.Slug} {
			if _, err := svc.Open(ctx, key); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("Open(%q) after Delete = %v, want not_found", key, err)
			}
		}
		if _, err := svc.Delete(ctx, o.ID); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("second Delete = %v, want not_found", err)
		}
		if orgs, _ := svc.List(ctx); len(orgs) != 0 {
			t.Fatalf("List after Delete = %+v, want none", orgs)
		}

		again := mustCreate(t, svc, "Acme Again", "acme")
		if again.ID == o.ID {
			t.Fatal("a new org reused the deleted org's id")
		}
		if got, err := svc.Get(ctx, "acme"); err != nil || got.ID != again.ID {
			t.Fatalf("Get(acme) = %+v, %v; want the new org", got, err)
		}
	})
}

func TestOpen_RefusesDatabaseOfAnotherOrg(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, st := newService(t, opts)
		a := mustCreate(t, svc, "Alpha", "alpha")
		b := mustCreate(t, svc, "Bravo", "bravo")
		for _, o := range []org.Org{a, b} {
			db, err := svc.Open(ctx, o.ID)
			if err != nil {
				t.Fatal(err)
			}
			db.Release()
			st.Evict(o.ID) // close both, so their files are complete and unlocked
		}
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs = %d, want 0 before the swap", n)
		}
		swapDatabase(t, opts, a.ID, b.ID)

		db, err := svc.Open(ctx, b.ID)
		if err == nil {
			db.Release()
			t.Fatal("Open served org A's database as org B's")
		}
		if code := apperr.CodeOf(err); code == apperr.NotFound || code == apperr.Forbidden {
			t.Fatalf("Open = %v; want an internal refusal, not %s", err, code)
		}
		if n := st.OpenOrgs(); n != 0 {
			t.Fatalf("OpenOrgs = %d after a refused open, want 0", n)
		}
		db, err = svc.Open(ctx, a.ID)
		if err != nil {
			t.Fatalf("Open of the untouched org A: %v", err)
		}
		db.Release()
	})
}

// swapDatabase replaces org to's database with a copy of org from's: the
// file on SQLite; on PostgreSQL, from's database copied under to's name.
func swapDatabase(t *testing.T, opts store.Options, from, to string) {
	t.Helper()
	if opts.Driver == store.SQLite {
		dir := filepath.Join(opts.DataDir, "orgs")
		for _, suffix := range []string{"-wal", "-shm"} {
			os.Remove(filepath.Join(dir, to+".db"+suffix))
		}
		src, err := os.Open(filepath.Join(dir, from+".db"))
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		dst, err := os.OpenFile(filepath.Join(dir, to+".db"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	admin, err := sql.Open("pgx", opts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ident := func(id string) string { return pgx.Identifier{storetest.OrgDBName(t, opts, id)}.Sanitize() }
	for _, q := range []string{
		"DROP DATABASE " + ident(to) + " WITH (FORCE)",
		"CREATE DATABASE " + ident(to) + " TEMPLATE " + ident(from),
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

func TestWatch_EvictsOrgSuspendedByAnotherProcess(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, st := newService(t, opts)
		// The CLI: a second store on the same data.
		cli := org.NewService(openStore(t, opts), nil)
		o := mustCreate(t, svc, "Acme", "acme")

		watchCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			svc.Watch(watchCtx, 20*time.Millisecond)
		}()
		t.Cleanup(func() { stop(); <-done })

		db, err := svc.Open(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		db.Release()
		if _, err := cli.Suspend(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for st.OpenOrgs() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("handle of an org suspended by another process was never evicted")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := svc.Open(ctx, o.ID); apperr.CodeOf(err) != apperr.Forbidden {
			t.Fatalf("Open after another process suspended the org = %v, want forbidden", err)
		}
	})
}

func TestOpen_ConcurrentFirstUsesOfOneOrgShareOneHandle(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, st := newService(t, opts)
		o := mustCreate(t, svc, "Acme", "acme")
		errs := make(chan error, 16)
		for range 16 {
			go func() {
				db, err := svc.Open(ctx, o.ID)
				if err == nil {
					defer db.Release()
					var owner string
					err = db.DB().SQL().QueryRowContext(ctx, "SELECT org_id FROM org_meta").Scan(&owner)
					if err == nil && owner != o.ID {
						err = errors.New("wrong owner " + owner)
					}
				}
				errs <- err
			}()
		}
		for range 16 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if n := st.OpenOrgs(); n != 1 {
			t.Fatalf("OpenOrgs = %d, want 1", n)
		}
	})
}

func TestCreate_HooksRunInTheCreationTransaction(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, st := newService(t, opts)
		var seenTx *store.Tx
		fail := false
		svc.OnCreate(func(ctx context.Context, tx *store.Tx, o org.Org) error {
			seenTx = tx
			// The org row is visible inside the hook's transaction.
			var slug string
			if err := tx.QueryRowContext(ctx, "SELECT slug FROM orgs WHERE id = $1", o.ID).Scan(&slug); err != nil {
				return err
			}
			if slug != o.Slug || !tx.Now.Equal(o.CreatedAt) {
				t.Errorf("hook saw slug %q at %v, want %q at %v", slug, tx.Now, o.Slug, o.CreatedAt)
			}
			if fail {
				return apperr.Errorf(apperr.Unavailable, "key service down")
			}
			return nil
		})
		o := mustCreate(t, svc, "Acme", "acme")
		if seenTx == nil {
			t.Fatal("the create hook did not run")
		}

		fail = true
		if _, err := svc.Create(ctx, "Beta", "beta"); apperr.CodeOf(err) != apperr.Unavailable {
			t.Fatalf("Create with a failing hook = %v, want the hook's unavailable", err)
		}
		var n int
		if err := st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM orgs WHERE slug = 'beta'").Scan(&n); err != nil || n != 0 {
			t.Fatalf("a refused Create left %d org rows (%v)", n, err)
		}
		if _, err := svc.Get(ctx, "beta"); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("Get of a refused org = %v, want not_found", err)
		}
		if _, err := svc.Get(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreate_FailedDatabaseCreationUndoesTheHooksAndTheRow(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, st := newService(t, opts)
		var created, undone string
		svc.OnCreate(func(ctx context.Context, tx *store.Tx, o org.Org) error {
			created = o.ID
			// Occupy the org database's place so that its creation fails.
			if opts.Driver == store.SQLite {
				return os.MkdirAll(filepath.Join(opts.DataDir, "orgs", o.ID+".db"), 0o700)
			}
			db, err := sql.Open("pgx", opts.URL)
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.ExecContext(ctx, `CREATE DATABASE "`+storetest.OrgDBName(t, opts, o.ID)+`"`)
			return err
		})
		svc.OnDelete(func(ctx context.Context, o org.Org) error {
			undone = o.ID
			return nil
		})
		if _, err := svc.Create(ctx, "Acme", "acme"); err == nil {
			t.Fatal("Create succeeded although its database could not be made")
		}
		if created == "" || undone != created {
			t.Fatalf("create hook saw %q, delete hook %q: the hooks' work was not undone", created, undone)
		}
		var n int
		if err := st.Control().SQL().QueryRowContext(ctx, "SELECT COUNT(*) FROM orgs").Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d org rows left (%v)", n, err)
		}
	})
}

func TestOnChange_RunsInTheTransactionOfEveryChange(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		svc, _ := newService(t, opts)
		var changes []string
		refuse := ""
		svc.OnChange(func(ctx context.Context, tx *store.Tx, o org.Org, change string) error {
			// The change is visible inside the hook's transaction.
			var status string
			if err := tx.QueryRowContext(ctx, "SELECT status FROM orgs WHERE id = $1", o.ID).Scan(&status); err != nil {
				return err
			}
			if status != string(o.Status) {
				t.Errorf("%s: hook saw status %q, org says %q", change, status, o.Status)
			}
			if change == refuse {
				return errors.New("refused by the hook")
			}
			changes = append(changes, change)
			return nil
		})
		o := mustCreate(t, svc, "Acme", "acme")
		for _, f := range []func(context.Context, string) (org.Org, error){svc.Suspend, svc.Suspend, svc.Resume, svc.Resume} {
			if _, err := f(ctx, o.Slug); err != nil {
				t.Fatal(err)
			}
		}
		// A refused change is undone.
		refuse = org.ChangeSuspended
		if _, err := svc.Suspend(ctx, o.Slug); err == nil {
			t.Fatal("a suspension the hook refused succeeded")
		}
		if got, _ := svc.Get(ctx, o.ID); got.Status != org.Active {
			t.Fatalf("status after a refused suspension: %s, want active", got.Status)
		}
		refuse = ""
		if _, err := svc.Delete(ctx, o.Slug); err != nil {
			t.Fatal(err)
		}
		want := []string{org.ChangeCreated, org.ChangeSuspended, org.ChangeResumed, org.ChangeDeleted}
		if strings.Join(changes, " ") != strings.Join(want, " ") {
			t.Fatalf("changes %v, want %v (no change when the status stays)", changes, want)
		}
	})
}
