package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Scope says which databases a Schema belongs in.
type Scope int

// The scopes of a Schema.
const (
	ControlScope Scope = iota // the one control database
	OrgScope                  // every org database
)

// Migration is one step of a schema. Postgres "" means the SQLite text
// serves both drivers; give it only where types differ (TIMESTAMP vs
// TIMESTAMPTZ, BLOB vs BYTEA, ...). The text may hold several statements.
type Migration struct {
	Version  int
	Name     string
	SQLite   string
	Postgres string
}

// Schema is the tables of one package (Name, e.g. "org") in one scope; a
// package may have one schema in each scope. Versions start at 1 and
// increase by 1.
type Schema struct {
	Name       string
	Scope      Scope
	Migrations []Migration
}

func (s Schema) latest() int {
	if len(s.Migrations) == 0 {
		return 0
	}
	return s.Migrations[len(s.Migrations)-1].Version
}

func (m Migration) text(d Driver) string {
	if d == Postgres && m.Postgres != "" {
		return m.Postgres
	}
	return m.SQLite
}

func validateSchemas(schemas []Schema) error {
	type key struct {
		scope Scope
		name  string
	}
	seen := map[key]bool{}
	for _, s := range schemas {
		if s.Name == "" {
			return fmt.Errorf("store: schema without a name")
		}
		if seen[key{s.Scope, s.Name}] {
			return fmt.Errorf("store: schema %q given twice in one scope", s.Name)
		}
		seen[key{s.Scope, s.Name}] = true
		if s.Scope != ControlScope && s.Scope != OrgScope {
			return fmt.Errorf("store: schema %q: unknown scope %d", s.Name, s.Scope)
		}
		for i, m := range s.Migrations {
			if m.Version != i+1 {
				return fmt.Errorf("store: schema %q: migration %d has version %d, want %d", s.Name, i, m.Version, i+1)
			}
			if strings.TrimSpace(m.SQLite) == "" {
				return fmt.Errorf("store: schema %q: migration %d has no SQL", s.Name, m.Version)
			}
		}
	}
	return nil
}

var migrationsTable = map[Driver]string{
	SQLite: `CREATE TABLE IF NOT EXISTS schema_migrations (
	schema     TEXT NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT NOT NULL,
	applied_at TIMESTAMP NOT NULL,
	PRIMARY KEY (schema, version)
)`,
	Postgres: `CREATE TABLE IF NOT EXISTS schema_migrations (
	schema     TEXT NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT NOT NULL,
	applied_at TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (schema, version)
)`,
}

// versions returns the latest applied version of every schema in db. A
// database without schema_migrations has none.
func versions(ctx context.Context, db *DB) (map[string]int, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT schema, MAX(version) FROM schema_migrations GROUP BY schema")
	if err != nil {
		exists, xerr := migrationsTableExists(ctx, db)
		if xerr == nil && !exists {
			return map[string]int{}, nil
		}
		return nil, fmt.Errorf("read schema versions: %w", err)
	}
	defer rows.Close()
	v := map[string]int{}
	for rows.Next() {
		var name string
		var version int
		if err := rows.Scan(&name, &version); err != nil {
			return nil, fmt.Errorf("read schema versions: %w", err)
		}
		v[name] = version
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema versions: %w", err)
	}
	return v, nil
}

func migrationsTableExists(ctx context.Context, db *DB) (bool, error) {
	q := "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
	if db.driver == Postgres {
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// behind reports whether db lacks migrations of schemas, and refuses a
// database that is ahead of them (written by a newer binary).
func behind(ctx context.Context, db *DB, schemas []Schema) (bool, error) {
	have, err := versions(ctx, db)
	if err != nil {
		return false, err
	}
	late := false
	for _, s := range schemas {
		switch v := have[s.Name]; {
		case v > s.latest():
			return false, fmt.Errorf("schema %q is at version %d, newer than this program's %d", s.Name, v, s.latest())
		case v < s.latest():
			late = true
		}
	}
	return late, nil
}

// migrate applies the missing migrations of schemas to db and returns how
// many it applied. Each migration runs in its own transaction, after
// taking the backend's migration lock and re-reading whether it is still
// missing, so that two processes migrating at once apply it once.
// execer is what a backend's LockMigrations runs its statement on (the
// same interface literal, so that the method values fit lock).
type execer = interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func migrate(ctx context.Context, db *DB, lock func(context.Context, execer) error, schemas []Schema) (int, error) {
	if _, err := db.sql.ExecContext(ctx, migrationsTable[db.driver]); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	late, err := behind(ctx, db, schemas)
	if err != nil || !late {
		return 0, err
	}
	have, err := versions(ctx, db)
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, s := range schemas {
		for _, m := range s.Migrations {
			if m.Version <= have[s.Name] {
				continue
			}
			did, err := applyMigration(ctx, db, lock, s.Name, m)
			if err != nil {
				return applied, err
			}
			if did {
				applied++
			}
		}
	}
	return applied, nil
}

func applyMigration(ctx context.Context, db *DB, lock func(context.Context, execer) error, schema string, m Migration) (bool, error) {
	did := false
	err := db.InTx(ctx, func(tx *Tx) error {
		if err := lock(ctx, tx.Querier); err != nil {
			return err
		}
		var n int
		err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE schema = $1 AND version = $2", schema, m.Version).Scan(&n)
		if err != nil {
			return err
		}
		if n > 0 {
			return nil // another process got here first
		}
		if _, err := tx.ExecContext(ctx, m.text(db.driver)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO schema_migrations (schema, version, name, applied_at) VALUES ($1, $2, $3, $4)",
			schema, m.Version, m.Name, tx.Now)
		did = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("migrate %s %d (%s): %w", schema, m.Version, m.Name, err)
	}
	return did, nil
}
