package storetest

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"bulwark/internal/store"
)

// OrgDBName is the PostgreSQL database name of an org under the control
// database that opts.URL names, computed here independently of package
// store so that tests check the store rather than repeat it.
func OrgDBName(t testing.TB, opts store.Options, orgID string) string {
	t.Helper()
	conf, err := pgx.ParseConfig(opts.URL)
	if err != nil {
		t.Fatal(err)
	}
	return conf.Database + "_org_" + strings.ReplaceAll(orgID, "-", "")
}

// OrgDBExists looks for an org's database without package store: the file
// DATA/orgs/<id>.db on SQLite, a row of pg_database on PostgreSQL.
func OrgDBExists(t testing.TB, opts store.Options, orgID string) bool {
	t.Helper()
	if opts.Driver == store.SQLite {
		_, err := os.Stat(filepath.Join(opts.DataDir, "orgs", orgID+".db"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		return err == nil
	}
	db, err := sql.Open("pgx", opts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM pg_database WHERE datname = $1", OrgDBName(t, opts, orgID)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

// OrgDBURL is a PostgreSQL URL of an org's database, for tests that reach
// it behind package store's back.
func OrgDBURL(t testing.TB, opts store.Options, orgID string) string {
	t.Helper()
	u, err := withDatabase(opts.URL, OrgDBName(t, opts, orgID))
	if err != nil {
		t.Fatal(err)
	}
	return u
}
