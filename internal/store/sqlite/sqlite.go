package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Config says where the databases live and how each pool is sized.
type Config struct {
	DataDir        string        // made absolute by New
	BusyTimeout    time.Duration // how long a writer waits for the lock
	MaxConnsPerOrg int           // connections per org database pool
}

// Backend opens, creates and removes SQLite databases under one data
// directory.
type Backend struct {
	dir         string
	orgDir      string
	busyTimeout time.Duration
	maxConns    int
}

// New prepares the data directory (0700) and its orgs/ subdirectory.
func New(cfg Config) (*Backend, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("sqlite: data directory is required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("sqlite: data directory: %w", err)
	}
	orgDir := filepath.Join(dir, "orgs")
	for _, d := range []string{dir, orgDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: chmod %s: %w", d, err)
		}
	}
	maxConns := cfg.MaxConnsPerOrg
	if maxConns < 1 {
		maxConns = 1
	}
	return &Backend{dir: dir, orgDir: orgDir, busyTimeout: cfg.BusyTimeout, maxConns: maxConns}, nil
}

// OpenControl opens DATA/control.db, creating it (0600) when missing.
func (b *Backend) OpenControl(ctx context.Context) (*sql.DB, error) {
	path := filepath.Join(b.dir, "control.db")
	if err := createFile(path, false); err != nil {
		return nil, err
	}
	db, err := b.open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open control db: %w", err)
	}
	// The control database serves every request (sessions, org lookups):
	// allow more readers than an org database.
	// Idle connections are kept up to that size (closed after 5 minutes
	// unused), so concurrent requests do not reopen the file and
	// re-prepare statements on every burst.
	db.SetMaxOpenConns(max(8, b.maxConns))
	db.SetMaxIdleConns(max(8, b.maxConns))
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// OrgPath returns the file of an org database.
func (b *Backend) OrgPath(orgID string) string {
	return filepath.Join(b.orgDir, orgID+".db")
}

// CreateOrg creates the org's database file. It returns an error wrapping
// fs.ErrExist when the file exists already.
func (b *Backend) CreateOrg(ctx context.Context, orgID string) error {
	return createFile(b.OrgPath(orgID), true)
}

// OpenOrg opens an existing org database with a small pool (at most
// database.max_conns_per_org connections, none kept past a minute idle),
// so that a thousand open orgs that are not busy cost a thousand
// connections or fewer.
// It returns an error wrapping fs.ErrNotExist when the file is missing.
func (b *Backend) OpenOrg(ctx context.Context, orgID string) (*sql.DB, error) {
	path := b.OrgPath(orgID)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("sqlite: open org db: %w", err)
	}
	db, err := b.open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open org db: %w", err)
	}
	db.SetMaxOpenConns(b.maxConns)
	// Connections stay open while they are used: with fewer idle than
	// open, concurrent requests to one org closed and reopened a
	// connection on nearly every query. One that has been idle a minute
	// is closed, so an org that had a burst goes back to no connection
	// of its own; the store's janitor closes the whole handle after its
	// idle timeout.
	db.SetMaxIdleConns(b.maxConns)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

// DropOrg removes the org's database file and its -wal and -shm
// companions. It returns an error wrapping fs.ErrNotExist when there was
// no database file.
func (b *Backend) DropOrg(ctx context.Context, orgID string) error {
	path := b.OrgPath(orgID)
	var mainErr error
	for i, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		err := os.Remove(p)
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			if i == 0 {
				mainErr = err
			}
			continue
		}
		return fmt.Errorf("sqlite: drop org db: %w", err)
	}
	if mainErr != nil {
		return fmt.Errorf("sqlite: drop org db: %w", mainErr)
	}
	return nil
}

// OrgExists reports whether the org's database file exists.
func (b *Backend) OrgExists(ctx context.Context, orgID string) (bool, error) {
	_, err := os.Stat(b.OrgPath(orgID))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("sqlite: stat org db: %w", err)
}

// LockMigrations does nothing: migration transactions begin IMMEDIATE,
// which already holds the database's write lock.
func (b *Backend) LockMigrations(ctx context.Context, tx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}) error {
	return nil
}

// Close releases nothing; every *sql.DB is closed by its owner.
func (b *Backend) Close() error { return nil }

// IsUniqueViolation reports whether err is a UNIQUE or PRIMARY KEY
// constraint failure.
func IsUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func (b *Backend) open(ctx context.Context, path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", b.dsn(path))
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// dsn builds a file: URI so that SQLite applies mode=rw and the path is
// escaped (a data directory may contain '?' or '#').
func (b *Backend) dsn(path string) string {
	q := url.Values{}
	q.Add("mode", "rw")
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(b.busyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_txlock", "immediate")
	q.Add("_time_format", "sqlite")
	q.Add("_timezone", "UTC")
	return "file:" + (&url.URL{Path: filepath.ToSlash(path)}).EscapedPath() + "?" + q.Encode()
}

// createFile creates path with mode 0600. With exclusive it fails when the
// file exists; otherwise an existing file is kept (and its mode tightened).
func createFile(path string, exclusive bool) error {
	flags := os.O_RDWR | os.O_CREATE
	if exclusive {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return fmt.Errorf("sqlite: create %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sqlite: create %s: %w", filepath.Base(path), err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("sqlite: chmod %s: %w", filepath.Base(path), err)
	}
	return nil
}
