package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"bulwark/internal/store"
)

// EnvPostgres names the environment variable that selects the PostgreSQL
// server used by tests.
const EnvPostgres = "BULWARK_TEST_POSTGRES"

// maxControlName keeps "<control>_org_<32 hex>" within PostgreSQL's 63
// bytes (see package store/postgres).
const maxControlName = 63 - len("_org_") - 32

// Main runs the tests of a package and stops the throwaway PostgreSQL
// cluster, if one was started, before exiting. Call it from TestMain:
//
//	func TestMain(m *testing.M) { storetest.Main(m) }
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit, for a TestMain that has its own cleanup to
// do after the tests: it returns the exit code.
func Run(m *testing.M) int {
	clusterState.mu.Lock()
	clusterState.mainRunning = true
	clusterState.mu.Unlock()
	code := m.Run()
	if err := stopCluster(); err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Each runs fn as subtest "sqlite" with a fresh data directory and as
// subtest "postgres" with a fresh control database. The options have small
// pools and a generous idle timeout; tests change what they need.
func Each(t *testing.T, fn func(t *testing.T, opts store.Options)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		fn(t, store.Options{
			Driver:         store.SQLite,
			DataDir:        t.TempDir(),
			MaxOpenOrgs:    100,
			IdleTimeout:    time.Hour,
			MaxConnsPerOrg: 2,
			BusyTimeout:    5 * time.Second,
		})
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, store.Options{
			Driver:         store.Postgres,
			URL:            FreshControlDB(t),
			MaxOpenOrgs:    100,
			IdleTimeout:    time.Hour,
			MaxConnsPerOrg: 2,
		})
	})
}

// PostgresURL returns the URL of the PostgreSQL server tests use (its
// maintenance database), starting the throwaway cluster when needed. It
// skips the test when BULWARK_TEST_POSTGRES=skip.
func PostgresURL(t testing.TB) string {
	t.Helper()
	switch v := os.Getenv(EnvPostgres); v {
	case "skip":
		t.Skip(EnvPostgres + "=skip: PostgreSQL tests skipped")
		return ""
	case "":
		u, err := startCluster()
		if err != nil {
			t.Fatalf("storetest: %v", err)
		}
		return u
	default:
		return v
	}
}

// FreshControlDB creates an empty database named after the test and
// returns its URL. The database, and every org database made from it, is
// dropped when the test ends.
func FreshControlDB(t testing.TB) string {
	t.Helper()
	server := PostgresURL(t)
	name := controlName(t.Name())
	admin, err := sql.Open("pgx", server)
	if err != nil {
		t.Fatalf("storetest: open %s: %v", EnvPostgres, err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("storetest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := dropDatabases(server, name); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})
	u, err := withDatabase(server, name)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return u
}

// dropDatabases drops name and every "<name>_org_..." database.
func dropDatabases(server, name string) error {
	admin, err := sql.Open("pgx", server)
	if err != nil {
		return err
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := admin.QueryContext(ctx,
		"SELECT datname FROM pg_database WHERE datname = $1 OR starts_with(datname, $2)", name, name+"_org_")
	if err != nil {
		return fmt.Errorf("list databases of %s: %w", name, err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range names {
		if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", n, err)
		}
	}
	return nil
}

// controlName turns a test name into a database name: lower-case
// [a-z0-9_], short enough for org names, with a random suffix.
func controlName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			b.WriteRune(r)
		default:
			if s := b.String(); s != "" && !strings.HasSuffix(s, "_") {
				b.WriteByte('_')
			}
		}
	}
	base := strings.Trim(b.String(), "_")
	suffix := randomHex(4)
	if keep := maxControlName - len("t_") - len(suffix) - 1; len(base) > keep {
		base = base[:keep]
	}
	return "t_" + base + "_" + suffix
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// withDatabase returns server with its database replaced by name. It
// accepts both URL and keyword/value connection strings.
func withDatabase(server, name string) (string, error) {
	if strings.HasPrefix(server, "postgres://") || strings.HasPrefix(server, "postgresql://") {
		u, err := url.Parse(server)
		if err != nil {
			return "", fmt.Errorf("%s does not parse as a URL", EnvPostgres)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	return server + " dbname=" + name, nil
}
