package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"container/list"

	"bulwark/internal/apperr"
)

// errClosed is returned once Close has run.
var errClosed = apperr.Errorf(apperr.Unavailable, "store is closed")

// handle is one open org database, shared by every user of that org.
// refs, evicted, lastUsed and elem are guarded by Store.mu.
type handle struct {
	id       string
	db       *DB
	refs     int
	evicted  bool // out of the cache: closes when refs drops to 0
	lastUsed time.Time
	elem     *list.Element

	closeOnce sync.Once
}

// openCall is a cold open in progress; later callers for the same org
// wait for it instead of opening a second pool.
type openCall struct {
	done  chan struct{}
	err   error
	stale bool // Evict ran during the open: do not cache the result
}

// OrgDB is one use of an org database, from AcquireOrg to Release.
type OrgDB struct {
	s        *Store
	h        *handle
	released atomic.Bool
}

// DB returns the org's database. It must not be used after Release.
func (o *OrgDB) DB() *DB { return o.h.db }

// OrgID returns the id of the org whose database this is.
func (o *OrgDB) OrgID() string { return o.h.id }

// Release ends this use. The handle stays open for the next user unless it
// was evicted, in which case the last user's Release closes it. Calling
// Release more than once has no further effect.
func (o *OrgDB) Release() {
	if o.released.Swap(true) {
		return
	}
	s, h := o.s, o.h
	s.mu.Lock()
	h.refs--
	h.lastUsed = s.opts.Now()
	closeNow := h.refs == 0 && h.evicted
	s.mu.Unlock()
	if closeNow {
		s.closeHandle(h)
	}
}

// AcquireOrg returns the org's database, opening it when no handle is
// cached: concurrent first uses share one open. A cold open asks the gate
// first and returns its error as is, then migrates the database if it is
// behind and runs the open check. The caller must Release the result.
//
// Returns invalid for a malformed org id, not_found when the org has no
// database, unavailable after Close, and whatever the gate returns.
func (s *Store) AcquireOrg(ctx context.Context, orgID string) (*OrgDB, error) {
	if err := checkOrgID(orgID); err != nil {
		return nil, err
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, errClosed
		}
		if h, ok := s.cached[orgID]; ok {
			h.refs++
			h.lastUsed = s.opts.Now()
			s.lru.MoveToFront(h.elem)
			s.mu.Unlock()
			return &OrgDB{s: s, h: h}, nil
		}
		if c, ok := s.opening[orgID]; ok {
			s.mu.Unlock()
			select {
			case <-c.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if c.err != nil && !(isContextErr(c.err) && ctx.Err() == nil) {
				return nil, c.err
			}
			continue // take the cached handle, or open again if it was evicted meanwhile
		}
		c := &openCall{done: make(chan struct{})}
		s.opening[orgID] = c
		gate, check := s.gate, s.check
		s.mu.Unlock()

		h, err := s.coldOpen(ctx, orgID, gate, check)

		s.mu.Lock()
		delete(s.opening, orgID)
		c.err = err
		close(c.done)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		s.open++
		h.refs = 1
		h.lastUsed = s.opts.Now()
		if s.closed || c.stale {
			// Serve no one after Close; after an Evict, serve this caller
			// (its open began before) but keep the handle out of the cache.
			closed := s.closed
			h.evicted = true
			s.mu.Unlock()
			if closed {
				s.closeHandle(h)
				return nil, errClosed
			}
			return &OrgDB{s: s, h: h}, nil
		}
		h.elem = s.lru.PushFront(h)
		s.cached[orgID] = h
		victims := s.trimLocked()
		s.mu.Unlock()
		for _, v := range victims {
			s.closeHandle(v)
		}
		return &OrgDB{s: s, h: h}, nil
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (s *Store) coldOpen(ctx context.Context, orgID string, gate func(context.Context, string) error, check func(context.Context, string, *DB) error) (*handle, error) {
	if gate != nil {
		if err := gate(ctx, orgID); err != nil {
			return nil, err
		}
	}
	db, err := s.openOrgDB(ctx, orgID)
	if err != nil {
		return nil, err
	}
	late, err := behind(ctx, db, s.orgSchemas)
	if err == nil && late {
		var applied int
		applied, err = migrate(ctx, db, s.backend.LockMigrations, s.orgSchemas)
		if applied > 0 {
			s.log.Info("org database migrated at open", "org_id", orgID, "migrations", applied)
		}
	}
	if err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("open org db %s: %w", orgID, err)
	}
	if check != nil {
		if err := check(ctx, orgID, db); err != nil {
			db.sql.Close()
			return nil, err
		}
	}
	return &handle{id: orgID, db: db}, nil
}

func (s *Store) openOrgDB(ctx context.Context, orgID string) (*DB, error) {
	sqlDB, err := s.backend.OpenOrg(ctx, orgID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, apperr.Errorf(apperr.NotFound, "org database not found")
	}
	if err != nil {
		return nil, err
	}
	return s.newDB(sqlDB), nil
}

// trimLocked takes handles out of the cache until it holds MaxOpenOrgs,
// least recently used first, preferring handles no one is using. It
// returns the idle ones, for the caller to close outside the lock; busy
// ones close at their last Release.
func (s *Store) trimLocked() []*handle {
	var victims []*handle
	for len(s.cached) > s.opts.MaxOpenOrgs {
		var victim *handle
		for e := s.lru.Back(); e != nil; e = e.Prev() {
			if h := e.Value.(*handle); h.refs == 0 {
				victim = h
				break
			}
		}
		if victim == nil {
			victim = s.lru.Back().Value.(*handle)
		}
		if s.removeLocked(victim) {
			victims = append(victims, victim)
		}
	}
	return victims
}

// removeLocked takes h out of the cache and reports whether it is idle
// and must be closed now.
func (s *Store) removeLocked(h *handle) bool {
	delete(s.cached, h.id)
	s.lru.Remove(h.elem)
	h.evicted = true
	return h.refs == 0
}

func (s *Store) closeHandle(h *handle) error {
	var err error
	h.closeOnce.Do(func() {
		err = h.db.close()
		s.mu.Lock()
		s.open--
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("close org db", "org_id", h.id, "err", err)
			err = fmt.Errorf("close org db %s: %w", h.id, err)
		}
	})
	return err
}

// Evict takes the org's handle out of the cache so that the next
// AcquireOrg opens it again (and asks the gate again). Current users keep
// their handle; it closes at the last Release. An open in progress is not
// cached either.
func (s *Store) Evict(orgID string) {
	s.mu.Lock()
	var idle *handle
	if h, ok := s.cached[orgID]; ok && s.removeLocked(h) {
		idle = h
	}
	if c, ok := s.opening[orgID]; ok {
		c.stale = true
	}
	s.mu.Unlock()
	if idle != nil {
		s.closeHandle(idle)
	}
}

// OpenOrgs returns how many org databases have an open handle: the cached
// ones plus evicted ones that are still in use.
func (s *Store) OpenOrgs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

func (s *Store) janitor() {
	defer s.janitorWG.Done()
	every := min(max(s.opts.IdleTimeout/2, 10*time.Millisecond), time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.closeIdle()
		}
	}
}

// closeIdle closes the cached handles no one has used for IdleTimeout.
func (s *Store) closeIdle() {
	now := s.opts.Now()
	s.mu.Lock()
	var idle []*handle
	for e := s.lru.Back(); e != nil; {
		h := e.Value.(*handle)
		e = e.Prev()
		if h.refs == 0 && now.Sub(h.lastUsed) >= s.opts.IdleTimeout && s.removeLocked(h) {
			idle = append(idle, h)
		}
	}
	s.mu.Unlock()
	for _, h := range idle {
		s.closeHandle(h)
	}
}

// CreateOrgDB creates the org's database, applies the org schemas, then
// runs init (if any) in one transaction on it: package org writes the
// database's owner there. If any step fails, the new database is removed.
//
// Returns invalid for a malformed org id and conflict when the database
// exists already.
func (s *Store) CreateOrgDB(ctx context.Context, orgID string, init ...func(tx *Tx) error) error {
	if err := checkOrgID(orgID); err != nil {
		return err
	}
	err := s.backend.CreateOrg(ctx, orgID)
	if errors.Is(err, fs.ErrExist) {
		return apperr.Errorf(apperr.Conflict, "org database already exists")
	}
	if err != nil {
		return err
	}
	if err := s.initOrgDB(ctx, orgID, init); err != nil {
		// Drop with a context of its own: ctx may be why we failed.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if derr := s.backend.DropOrg(dctx, orgID); derr != nil {
			s.log.Error("remove half-created org db", "org_id", orgID, "err", derr)
		}
		return fmt.Errorf("create org db %s: %w", orgID, err)
	}
	return nil
}

func (s *Store) initOrgDB(ctx context.Context, orgID string, init []func(tx *Tx) error) error {
	db, err := s.openOrgDB(ctx, orgID)
	if err != nil {
		return err
	}
	defer db.sql.Close()
	if _, err := migrate(ctx, db, s.backend.LockMigrations, s.orgSchemas); err != nil {
		return err
	}
	if len(init) == 0 {
		return nil
	}
	return db.InTx(ctx, func(tx *Tx) error {
		for _, fn := range init {
			if err := fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
}

// DropOrgDB evicts the org's handle (closing it now when no one uses it)
// and deletes its database: the file and its -wal/-shm on SQLite, DROP
// DATABASE ... WITH (FORCE) on PostgreSQL, which ends sessions still on it.
//
// Returns invalid for a malformed org id and not_found when there was no
// database.
func (s *Store) DropOrgDB(ctx context.Context, orgID string) error {
	if err := checkOrgID(orgID); err != nil {
		return err
	}
	s.Evict(orgID)
	err := s.backend.DropOrg(ctx, orgID)
	if errors.Is(err, fs.ErrNotExist) {
		return apperr.Errorf(apperr.NotFound, "org database not found")
	}
	return err
}

// OrgDBExists reports whether the org's database exists.
// Returns invalid for a malformed org id.
func (s *Store) OrgDBExists(ctx context.Context, orgID string) (bool, error) {
	if err := checkOrgID(orgID); err != nil {
		return false, err
	}
	return s.backend.OrgExists(ctx, orgID)
}

// MigrateOrg applies the org schemas' missing migrations to the org's
// database and returns how many it applied. It does not ask the gate: an
// operator migrates suspended orgs too.
//
// Returns invalid for a malformed org id and not_found when the org has no
// database.
func (s *Store) MigrateOrg(ctx context.Context, orgID string) (int, error) {
	if err := checkOrgID(orgID); err != nil {
		return 0, err
	}
	s.mu.Lock()
	h, ok := s.cached[orgID]
	if ok {
		h.refs++
	}
	s.mu.Unlock()
	if ok {
		o := &OrgDB{s: s, h: h}
		defer o.Release()
		return migrate(ctx, h.db, s.backend.LockMigrations, s.orgSchemas)
	}
	db, err := s.openOrgDB(ctx, orgID)
	if err != nil {
		return 0, err
	}
	defer db.sql.Close()
	return migrate(ctx, db, s.backend.LockMigrations, s.orgSchemas)
}
