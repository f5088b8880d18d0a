package main

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bulwark/internal/apperr"
	"bulwark/internal/keys"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// TestOrgDelete_CryptoShredsACopyOfItsDatabase copies an org's database
// before the org is deleted; afterwards nothing Bulwark holds (its control
// database, its KEK) opens a value of the copy.
func TestOrgDelete_CryptoShredsACopyOfItsDatabase(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		cfg := testConfig(t, opts)
		a, err := openApp(ctx, cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		o, err := a.orgs.Create(ctx, "Acme", "acme")
		if err != nil {
			t.Fatal(err)
		}
		ad := keys.AD{Table: "notes", RowID: "n1", Field: "body"}
		sealed, err := a.ring.Seal(ctx, o.ID, ad, []byte("the secret of acme"))
		if err != nil {
			t.Fatal(err)
		}
		// A copy of one of its files, as the object store or a backup holds.
		fileAD := keys.AD{Table: "files", RowID: "f1", Field: "content"}
		var file bytes.Buffer
		w, err := a.ring.NewEncryptingWriter(ctx, o.ID, fileAD, &file)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("the file of acme"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		openFile := func(ring *keys.Ring) (string, error) {
			sr, err := ring.NewReaderAt(ctx, o.ID, fileAD, bytes.NewReader(file.Bytes()), int64(file.Len()))
			if err != nil {
				return "", err
			}
			b, err := io.ReadAll(sr.NewSectionReader(0, sr.Size()))
			return string(b), err
		}
		if got, err := openFile(a.ring); err != nil || got != "the file of acme" {
			t.Fatalf("before deletion the file opens: %q, %v", got, err)
		}
		h, err := a.orgs.Open(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		err = h.DB().InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, "CREATE TABLE notes (id TEXT PRIMARY KEY, body BLOB)"); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO notes (id, body) VALUES ($1, $2)", "n1", sealed)
			return err
		})
		h.Release()
		if err != nil && opts.Driver == store.Postgres {
			// BLOB is not a PostgreSQL type.
			h, _ = a.orgs.Open(ctx, o.ID)
			err = h.DB().InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.ExecContext(ctx, "CREATE TABLE notes (id TEXT PRIMARY KEY, body BYTEA)"); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO notes (id, body) VALUES ($1, $2)", "n1", sealed)
				return err
			})
			h.Release()
		}
		if err != nil {
			t.Fatal(err)
		}

		// The copy, made as an attacker with the disk (or a backup) would.
		var readCopy func() []byte
		if opts.Driver == store.SQLite {
			a.store.Evict(o.ID)
			src := filepath.Join(cfg.DataDir, "orgs", o.ID+".db")
			raw, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(t.TempDir(), "copy.db")
			if err := os.WriteFile(dst, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			readCopy = func() []byte { return readNote(t, "sqlite", "file:"+dst) }
		} else {
			a.store.Evict(o.ID)
			server, err := sql.Open("pgx", opts.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer server.Close()
			copyName := "shredcopy_" + strings.ReplaceAll(o.ID, "-", "")
			if _, err := server.ExecContext(ctx, `CREATE DATABASE "`+copyName+`" TEMPLATE "`+storetest.OrgDBName(t, opts, o.ID)+`"`); err != nil {
				t.Fatal(err)
			}
			defer server.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+copyName+`" WITH (FORCE)`)
			readCopy = func() []byte { return readNote(t, "pgx", withDB(t, opts.URL, copyName)) }
		}
		if pt, err := a.ring.Open(ctx, o.ID, ad, readCopy()); err != nil || string(pt) != "the secret of acme" {
			t.Fatalf("before deletion the copy opens: %q, %v", pt, err)
		}

		if _, err := a.orgs.Delete(ctx, o.ID); err != nil {
			t.Fatal(err)
		}
		// Everything Bulwark holds: this process's ring, and a fresh one from
		// the control database and the KEK file.
		a2, err := openApp(ctx, cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		defer a2.Close()
		for i, ring := range []*keys.Ring{a.ring, a2.ring} {
			if _, err := ring.Open(ctx, o.ID, ad, readCopy()); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("ring %d opens the copy after deletion: %v", i, err)
			}
			if got, err := openFile(ring); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("ring %d opens the file after deletion: %q, %v", i, got, err)
			}
		}
	})
}

func readNote(t *testing.T, driver, dsn string) []byte {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var body []byte
	if err := db.QueryRow("SELECT body FROM notes WHERE id = 'n1'").Scan(&body); err != nil {
		t.Fatal(err)
	}
	return body
}

func withDB(t *testing.T, url, name string) string {
	t.Helper()
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
