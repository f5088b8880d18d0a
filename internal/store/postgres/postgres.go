package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// maxControlName is the longest control database name that leaves room for
// "_org_" and 32 hex digits within PostgreSQL's 63-byte identifiers.
const maxControlName = 63 - len("_org_") - 32

// migrationLockKey is the advisory lock taken by migration transactions,
// so that two processes migrating one database apply each version once.
const migrationLockKey = 0x62756c7761726b // "bulwark"

// Config says which server to use and how each org pool is sized.
type Config struct {
	URL            string // the control database
	MaxConnsPerOrg int
}

// Backend creates, opens and drops databases on one PostgreSQL server.
type Backend struct {
	conf     *pgx.ConnConfig
	control  string
	maxConns int
	admin    *sql.DB // the control pool, used for CREATE/DROP DATABASE
}

// New parses the URL and checks that the control database name leaves
// room for org database names.
func New(cfg Config) (*Backend, error) {
	if cfg.URL == "" {
		return nil, errors.New("postgres: database URL is required")
	}
	conf, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, errors.New("postgres: database URL does not parse")
	}
	name := conf.Database
	if name == "" {
		return nil, errors.New("postgres: database URL names no database")
	}
	if len(name) > maxControlName {
		return nil, fmt.Errorf("postgres: control database name %q is longer than %d bytes, which leaves no room for org database names", name, maxControlName)
	}
	maxConns := cfg.MaxConnsPerOrg
	if maxConns < 1 {
		maxConns = 1
	}
	return &Backend{conf: conf, control: name, maxConns: maxConns}, nil
}

// OpenControl opens the control database.
func (b *Backend) OpenControl(ctx context.Context) (*sql.DB, error) {
	db := stdlib.OpenDB(*b.conf.Copy())
	db.SetMaxOpenConns(max(10, b.maxConns))
	// Idle connections are kept up to the pool's size, so that a burst of
	// concurrent work does not open and close a connection per request (a
	// new PostgreSQL connection costs tens of milliseconds); the ones not
	// used for 5 minutes are closed.
	db.SetMaxIdleConns(max(10, b.maxConns))
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: open control db %q: %w", b.control, err)
	}
	b.admin = db
	return db, nil
}

// OrgDatabase returns the name of an org's database.
func (b *Backend) OrgDatabase(orgID string) string {
	return b.control + "_org_" + strings.ReplaceAll(orgID, "-", "")
}

// CreateOrg runs CREATE DATABASE for the org. It returns an error wrapping
// fs.ErrExist when the database exists already.
func (b *Backend) CreateOrg(ctx context.Context, orgID string) error {
	_, err := b.admin.ExecContext(ctx, "CREATE DATABASE "+quote(b.OrgDatabase(orgID)))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P04" { // duplicate_database
		return fmt.Errorf("postgres: create org db: %w", fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("postgres: create org db: %w", err)
	}
	return nil
}

// OpenOrg opens a small pool on the org's database. It returns an error
// wrapping fs.ErrNotExist when the database does not exist.
func (b *Backend) OpenOrg(ctx context.Context, orgID string) (*sql.DB, error) {
	conf := b.conf.Copy()
	conf.Database = b.OrgDatabase(orgID)
	db := stdlib.OpenDB(*conf)
	db.SetMaxOpenConns(b.maxConns)
	// Connections stay open while the handle is cached, up to the pool's
	// size, so neither a warm handle nor a burst of concurrent requests
	// needs new connections; the store's janitor closes the whole handle
	// after its idle timeout. database.max_open_orgs × max_conns_per_org
	// bounds them all.
	db.SetMaxIdleConns(b.maxConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "3D000" { // invalid_catalog_name
			return nil, fmt.Errorf("postgres: open org db: %w", fs.ErrNotExist)
		}
		return nil, fmt.Errorf("postgres: open org db: %w", err)
	}
	return db, nil
}

// DropOrg drops the org's database, ending any session still on it. It
// returns an error wrapping fs.ErrNotExist when there was no database.
func (b *Backend) DropOrg(ctx context.Context, orgID string) error {
	_, err := b.admin.ExecContext(ctx, "DROP DATABASE "+quote(b.OrgDatabase(orgID))+" WITH (FORCE)")
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "3D000" {
		return fmt.Errorf("postgres: drop org db: %w", fs.ErrNotExist)
	}
	if err != nil {
		return fmt.Errorf("postgres: drop org db: %w", err)
	}
	return nil
}

// OrgExists reports whether the org's database exists.
func (b *Backend) OrgExists(ctx context.Context, orgID string) (bool, error) {
	var one int
	err := b.admin.QueryRowContext(ctx, "SELECT 1 FROM pg_database WHERE datname = $1", b.OrgDatabase(orgID)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: look up org db: %w", err)
	}
	return true, nil
}

// LockMigrations takes a transaction-scoped advisory lock so that
// concurrent migrators of one database run one after the other.
func (b *Backend) LockMigrations(ctx context.Context, tx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}) error {
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLockKey)); err != nil {
		return fmt.Errorf("postgres: lock migrations: %w", err)
	}
	return nil
}

// Close releases nothing; every *sql.DB is closed by its owner.
func (b *Backend) Close() error { return nil }

// IsUniqueViolation reports whether err is a unique_violation.
func IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func quote(ident string) string {
	return pgx.Identifier{ident}.Sanitize()
}

// RawRows runs query on c with every result column in PostgreSQL's
// binary format and calls fn with each row's values as they came off the
// wire (nil for NULL; valid only during the call). For a reader of many
// rows whose columns it decodes itself: database/sql's conversions of
// each value are most of the cost of reading a long table through it.
func RawRows(ctx context.Context, c *pgx.Conn, query string, args []any, fn func(values [][]byte) error) error {
	rows, err := c.Query(ctx, query, append([]any{pgx.QueryResultFormats{pgx.BinaryFormatCode}}, args...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows.RawValues()); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Statement is one SQL statement and its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// ErrRolledBack is CommitPipelined's error when the server ended the
// transaction with a rollback instead of the commit asked for.
var ErrRolledBack = errors.New("postgres: the transaction was rolled back instead of committed")

// CommitPipelined runs stmts and then COMMIT on conn, which holds an open
// transaction, sending them all at once and reading their results after:
// one round trip. The first statement that fails stops the rest (the
// server skips everything after it, COMMIT too) and its error is returned;
// the transaction is then still open, in the failed state, for the caller
// to roll back. A COMMIT that the server answers with a rollback returns
// ErrRolledBack.
func CommitPipelined(ctx context.Context, conn *sql.Conn, stmts []Statement) error {
	return WithConn(conn, func(c *pgx.Conn) error {
		b := &pgx.Batch{}
		for _, s := range stmts {
			b.Queue(s.SQL, s.Args...)
		}
		b.Queue("COMMIT")
		br := c.SendBatch(ctx, b)
		var first error
		for range stmts {
			if _, err := br.Exec(); err != nil && first == nil {
				first = err
			}
		}
		tag, err := br.Exec()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		switch {
		case first != nil:
			return first
		case err != nil:
			return err
		case tag.String() != "COMMIT":
			return ErrRolledBack
		}
		return nil
	})
}

// WithConn runs fn on conn's pgx connection.
func WithConn(conn *sql.Conn, fn func(c *pgx.Conn) error) error {
	return conn.Raw(func(dc any) error {
		c, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return fmt.Errorf("postgres: connection %T is not pgx's", dc)
		}
		return fn(c.Conn())
	})
}
