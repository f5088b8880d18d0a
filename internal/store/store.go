package store

import (
	"container/list"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"bulwark/internal/store/postgres"
	"bulwark/internal/store/sqlite"
)

// Driver names a database engine.
type Driver string

// The drivers.
const (
	SQLite   Driver = "sqlite"
	Postgres Driver = "postgres"
)

// Options configure Open. Zero values take the defaults of package config.
type Options struct {
	Driver         Driver
	DataDir        string           // SQLite: where control.db and orgs/ live
	URL            string           // PostgreSQL: the control database
	MaxOpenOrgs    int              // cached org handles (default 1000)
	IdleTimeout    time.Duration    // an unused org handle closes after this (default 10m)
	MaxConnsPerOrg int              // connections per org pool (default 4)
	BusyTimeout    time.Duration    // SQLite lock wait (default 5s)
	Logger         *slog.Logger     // nil: discard
	Now            func() time.Time // nil: time.Now
}

// backend is what a driver package provides: where databases live and how
// their pools are opened. Org ids reaching it are validated.
type backend interface {
	OpenControl(ctx context.Context) (*sql.DB, error)
	CreateOrg(ctx context.Context, orgID string) error
	OpenOrg(ctx context.Context, orgID string) (*sql.DB, error)
	DropOrg(ctx context.Context, orgID string) error
	OrgExists(ctx context.Context, orgID string) (bool, error)
	LockMigrations(ctx context.Context, tx interface {
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	}) error
	Close() error
}

// Store is the control database and the cache of open org databases.
type Store struct {
	opts       Options
	log        *slog.Logger
	backend    backend
	control    *DB
	orgSchemas []Schema

	mu        sync.Mutex
	gate      func(ctx context.Context, orgID string) error
	check     func(ctx context.Context, orgID string, db *DB) error
	cached    map[string]*handle
	lru       *list.List // of *handle, most recently used at the front
	opening   map[string]*openCall
	open      int // handles whose pool is open, cached or not
	closed    bool
	stop      chan struct{}
	janitorWG sync.WaitGroup
}

// Open opens the control database, applies the control schemas' missing
// migrations, and starts the idle janitor. Org schemas are applied to each
// org database at its creation and, when it is behind, at its next open.
func Open(ctx context.Context, opts Options, schemas ...Schema) (*Store, error) {
	opts = withDefaults(opts)
	if err := validateSchemas(schemas); err != nil {
		return nil, err
	}
	var b backend
	var err error
	switch opts.Driver {
	case SQLite:
		if opts.URL != "" {
			return nil, errors.New("store: sqlite takes no database URL")
		}
		b, err = sqlite.New(sqlite.Config{DataDir: opts.DataDir, BusyTimeout: opts.BusyTimeout, MaxConnsPerOrg: opts.MaxConnsPerOrg})
	case Postgres:
		b, err = postgres.New(postgres.Config{URL: opts.URL, MaxConnsPerOrg: opts.MaxConnsPerOrg})
	default:
		return nil, fmt.Errorf("store: unknown driver %q (want sqlite or postgres)", opts.Driver)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{
		opts:    opts,
		log:     opts.Logger,
		backend: b,
		cached:  map[string]*handle{},
		lru:     list.New(),
		opening: map[string]*openCall{},
		stop:    make(chan struct{}),
	}
	controlSQL, err := b.OpenControl(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.control = s.newDB(controlSQL)
	var controlSchemas []Schema
	for _, sc := range schemas {
		if sc.Scope == ControlScope {
			controlSchemas = append(controlSchemas, sc)
		} else {
			s.orgSchemas = append(s.orgSchemas, sc)
		}
	}
	applied, err := migrate(ctx, s.control, b.LockMigrations, controlSchemas)
	if err != nil {
		controlSQL.Close()
		return nil, fmt.Errorf("store: control db: %w", err)
	}
	if applied > 0 {
		s.log.Info("control database migrated", "migrations", applied)
	}
	s.janitorWG.Add(1)
	go s.janitor()
	return s, nil
}

func withDefaults(o Options) Options {
	if o.MaxOpenOrgs <= 0 {
		o.MaxOpenOrgs = 1000
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Minute
	}
	if o.MaxConnsPerOrg <= 0 {
		o.MaxConnsPerOrg = 4
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (s *Store) newDB(db *sql.DB) *DB {
	d := &DB{sql: db, driver: s.opts.Driver, now: s.opts.Now}
	if s.opts.Driver == SQLite {
		d.group = &groupCommit{db: d}
	}
	return d
}

// Control returns the control database.
func (s *Store) Control() *DB { return s.control }

// Driver returns the driver the store was opened with.
func (s *Store) Driver() Driver { return s.opts.Driver }

// Now returns the store's clock reading in the form Tx.Now has: UTC,
// truncated to microseconds.
func (s *Store) Now() time.Time {
	return s.opts.Now().UTC().Truncate(time.Microsecond)
}

// SetGate installs the check that runs before every cold open of an org
// database: an error it returns is returned by AcquireOrg as is (package
// org refuses suspended and deleted orgs here). Set it before first use.
func (s *Store) SetGate(gate func(ctx context.Context, orgID string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = gate
}

// SetOpenCheck installs a check that runs after every cold open (and
// migration) of an org database, before the handle is shared; an error
// refuses the handle. Package org uses it to refuse a database file that
// belongs to another org.
func (s *Store) SetOpenCheck(check func(ctx context.Context, orgID string, db *DB) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.check = check
}

// IsUniqueViolation reports whether err is a unique or primary key
// constraint failure, on either driver.
func IsUniqueViolation(err error) bool {
	return sqlite.IsUniqueViolation(err) || postgres.IsUniqueViolation(err)
}

// Close stops the janitor and closes the control database and every org
// handle, in use or not; later calls to AcquireOrg fail.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	var toClose []*handle
	for e := s.lru.Front(); e != nil; e = e.Next() {
		h := e.Value.(*handle)
		h.evicted = true
		toClose = append(toClose, h)
	}
	s.cached = map[string]*handle{}
	s.lru.Init()
	s.mu.Unlock()
	s.janitorWG.Wait()

	var errs []error
	for _, h := range toClose {
		if err := s.closeHandle(h); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.control.sql.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close control db: %w", err))
	}
	if err := s.backend.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
