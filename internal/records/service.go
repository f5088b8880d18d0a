package records

import (
	"context"
	"sync"
	"time"

	"bulwark/internal/audit"
	"bulwark/internal/keys"
	"bulwark/internal/store"
)

// Service keeps the collections and records of every org, each in its
// org's own database.
type Service struct {
	st   *store.Store
	ring *keys.Ring
	aud  *audit.Service
	now  func() time.Time

	// defs caches collection definitions per org for reads; writes read
	// the definition in their own transaction. An entry lives cacheTTL,
	// so a change made by another node is seen within it.
	mu   sync.Mutex
	defs map[string]map[string]cachedCollection
}

type cachedCollection struct {
	c    Collection
	seen time.Time
}

// cacheTTL is how long a read trusts a cached collection definition.
const cacheTTL = time.Second

// New returns the records of the orgs of st, sealed by ring, audited in
// aud.
func New(st *store.Store, ring *keys.Ring, aud *audit.Service) *Service {
	return &Service{st: st, ring: ring, aud: aud, now: st.Now, defs: map[string]map[string]cachedCollection{}}
}

// withDB runs fn on the org's database.
func (s *Service) withDB(ctx context.Context, orgID string, fn func(db *store.DB) error) error {
	odb, err := s.st.AcquireOrg(ctx, orgID)
	if err != nil {
		return err
	}
	defer odb.Release()
	return fn(odb.DB())
}

// inTx runs fn in one transaction of the org's database.
func (s *Service) inTx(ctx context.Context, orgID string, fn func(tx *store.Tx) error) error {
	return s.withDB(ctx, orgID, func(db *store.DB) error { return db.InTx(ctx, fn) })
}

// event appends e to the org's audit log in tx.
func (s *Service) event(ctx context.Context, tx *store.Tx, orgID string, e audit.Event) error {
	_, err := s.aud.Append(ctx, tx, orgID, e)
	return err
}

// collection returns a definition for a read, from the cache when fresh.
func (s *Service) collection(ctx context.Context, orgID, name string) (Collection, error) {
	now := time.Now()
	s.mu.Lock()
	if e, ok := s.defs[orgID][name]; ok && now.Sub(e.seen) < cacheTTL {
		s.mu.Unlock()
		return e.c, nil
	}
	s.mu.Unlock()
	if !nameRe.MatchString(name) {
		return Collection{}, errNoCollection
	}
	var c Collection
	err := s.withDB(ctx, orgID, func(db *store.DB) error {
		var err error
		c, err = scanCollection(db.SQL().QueryRowContext(ctx, "SELECT "+collectionColumns+" FROM collections WHERE name = $1", name))
		return err
	})
	if err != nil {
		if isNoRows(err) {
			return Collection{}, errNoCollection
		}
		return Collection{}, err
	}
	s.mu.Lock()
	m := s.defs[orgID]
	if m == nil {
		if len(s.defs) > 10000 {
			clear(s.defs)
		}
		m = map[string]cachedCollection{}
		s.defs[orgID] = m
	}
	m[name] = cachedCollection{c: c, seen: now}
	s.mu.Unlock()
	return c, nil
}

// forget drops the org's cached definitions after a change here.
func (s *Service) forget(orgID string) {
	s.mu.Lock()
	delete(s.defs, orgID)
	s.mu.Unlock()
}
