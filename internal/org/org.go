package org

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// Status is where an org is in its lifecycle.
type Status string

// The statuses of an org.
const (
	Active    Status = "active"
	Suspended Status = "suspended"
	Deleted   Status = "deleted"
)

// MaxNameLen is the longest org name, in characters.
const MaxNameLen = 100

// Org is an organization. Times are UTC.
type Org struct {
	ID        string
	Name      string
	Slug      string
	Status    Status
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Service manages orgs in the control database and guards the opening of
// their databases.
type Service struct {
	st  *store.Store
	log *slog.Logger
	aud *audit.Service

	mu        sync.Mutex
	defPolicy *Policy
	onCreate  []func(ctx context.Context, tx *store.Tx, o Org) error
	onDelete  []func(ctx context.Context, o Org) error
	onChange  []func(ctx context.Context, tx *store.Tx, o Org, change string) error

	cache readCache
}

// write runs fn in a transaction of the control database and then
// forgets every cached read, whether or not it committed.
func (s *Service) write(ctx context.Context, fn func(tx *store.Tx) error) error {
	defer s.cache.clear()
	return s.st.Control().InTx(ctx, fn)
}

// The changes that OnChange hooks are told of.
const (
	ChangeCreated   = "org.created"
	ChangeSuspended = "org.suspended"
	ChangeResumed   = "org.resumed"
	ChangeDeleted   = "org.deleted"
)

// OnChange registers a hook that runs in the control-database transaction
// of every change of an org (ChangeCreated after the OnCreate hooks,
// ChangeSuspended, ChangeResumed, ChangeDeleted), with the org as changed:
// the audit log records the change there, so that it commits or rolls
// back with it. An error from a hook undoes the change. Register hooks at
// startup.
func (s *Service) OnChange(hook func(ctx context.Context, tx *store.Tx, o Org, change string) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onChange = append(s.onChange, hook)
}

// changed runs the OnChange hooks in tx.
func (s *Service) changed(ctx context.Context, tx *store.Tx, o Org, change string) error {
	s.mu.Lock()
	hooks := append([]func(context.Context, *store.Tx, Org, string) error(nil), s.onChange...)
	s.mu.Unlock()
	for _, hook := range hooks {
		if err := hook(ctx, tx, o, change); err != nil {
			return err
		}
	}
	return nil
}

// NewService returns the org service of st and installs its gate (only
// active orgs are opened) and open check (a database must name its org in
// org_meta) on st. st must have been opened with ControlSchema and
// OrgSchema.
func NewService(st *store.Store, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{st: st, log: logger}
	st.SetGate(s.gate)
	st.SetOpenCheck(s.checkOwner)
	return s
}

// OnCreate registers a hook that Create runs, in registration order, in
// the same control-database transaction that inserts the org (the keyring
// creates the org's keys there); an error from a hook stops the creation
// and nothing of it remains. Register hooks at startup.
func (s *Service) OnCreate(hook func(ctx context.Context, tx *store.Tx, o Org) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onCreate = append(s.onCreate, hook)
}

// OnDelete registers a hook that Delete runs, in registration order,
// before it marks the org deleted; an error from a hook stops the
// deletion. Register hooks at startup.
func (s *Service) OnDelete(hook func(ctx context.Context, o Org) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onDelete = append(s.onDelete, hook)
}

// Create creates an active org and its database. Operators call it.
// Returns invalid (with fields name and slug) for bad input and conflict
// when another org that is not deleted has the slug.
func (s *Service) Create(ctx context.Context, name, slug string) (Org, error) {
	return s.create(ctx, name, slug, nil)
}

// create is Create with extra, when not nil, run in the creation's
// transaction after the hooks.
func (s *Service) create(ctx context.Context, name, slug string, extra func(tx *store.Tx, o Org) error) (Org, error) {
	name = strings.TrimSpace(name)
	var fields []apperr.FieldError
	if code, msg := nameProblem(name); code != "" {
		fields = append(fields, apperr.FieldError{Field: "name", Code: code, Message: msg})
	}
	if code, msg := slugProblem(slug); code != "" {
		fields = append(fields, apperr.FieldError{Field: "slug", Code: code, Message: msg})
	}
	if len(fields) > 0 {
		return Org{}, apperr.WithFields("invalid organization", fields...)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Org{}, fmt.Errorf("new org id: %w", err)
	}
	o := Org{ID: id.String(), Name: name, Slug: slug, Status: Active}
	s.mu.Lock()
	hooks := append([]func(context.Context, *store.Tx, Org) error(nil), s.onCreate...)
	s.mu.Unlock()
	err = s.write(ctx, func(tx *store.Tx) error {
		o.CreatedAt, o.UpdatedAt = tx.Now, tx.Now
		if err := insertOrg(ctx, tx, o); err != nil {
			return err
		}
		for _, hook := range hooks {
			if err := hook(ctx, tx, o); err != nil {
				return err
			}
		}
		if extra != nil {
			if err := extra(tx, o); err != nil {
				return err
			}
		}
		return s.changed(ctx, tx, o, ChangeCreated)
	})
	if store.IsUniqueViolation(err) {
		return Org{}, &apperr.Error{Code: apperr.Conflict, Message: fmt.Sprintf("slug %q is taken", slug),
			Fields: []apperr.FieldError{{Field: "slug", Code: "taken", Message: "another organization has this slug"}}}
	}
	if err != nil {
		return Org{}, fmt.Errorf("create org: %w", err)
	}
	err = s.st.CreateOrgDB(ctx, o.ID, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, "INSERT INTO org_meta (org_id, created_at) VALUES ($1, $2)", o.ID, tx.Now)
		return err
	})
	if err != nil {
		// Undo what the creation transaction made (the delete hooks take
		// back what the create hooks added, such as keys), then take the
		// row back so that the slug is free again.
		dctx := context.WithoutCancel(ctx)
		s.mu.Lock()
		undo := append([]func(context.Context, Org) error(nil), s.onDelete...)
		s.mu.Unlock()
		for _, hook := range undo {
			if herr := hook(dctx, o); herr != nil {
				s.log.Error("undo org creation", "org_id", o.ID, "err", herr)
			}
		}
		for _, q := range []string{"DELETE FROM org_members WHERE org_id = $1", "DELETE FROM orgs WHERE id = $1"} {
			if _, derr := s.st.Control().SQL().ExecContext(dctx, q, o.ID); derr != nil {
				s.log.Error("remove org row after failed database creation", "org_id", o.ID, "err", derr)
			}
		}
		return Org{}, fmt.Errorf("create org database: %w", err)
	}
	s.log.Info("org created", "org_id", o.ID)
	return o, nil
}

func nameProblem(name string) (code, message string) {
	switch {
	case name == "":
		return "required", "name is required"
	case !utf8.ValidString(name):
		return "invalid_chars", "name must be UTF-8 text"
	case utf8.RuneCountInString(name) > MaxNameLen:
		return "too_long", "name must be at most 100 characters"
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "invalid_chars", "name must not contain control characters"
		}
	}
	return "", ""
}

func insertOrg(ctx context.Context, tx *store.Tx, o Org) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO orgs (id, slug, name, status, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)`, o.ID, o.Slug, o.Name, string(o.Status), o.CreatedAt, o.UpdatedAt)
	return err
}

// List returns the orgs that are not deleted, by slug. Operators call it.
func (s *Service) List(ctx context.Context) ([]Org, error) {
	rows, err := s.st.Control().SQL().QueryContext(ctx, `SELECT id, slug, name, status, created_at, updated_at
FROM orgs WHERE status <> 'deleted' ORDER BY slug`)
	if err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	defer rows.Close()
	var orgs []Org
	for rows.Next() {
		o, err := scanOrg(rows)
		if err != nil {
			return nil, fmt.Errorf("list orgs: %w", err)
		}
		orgs = append(orgs, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list orgs: %w", err)
	}
	return orgs, nil
}

// Get returns the org with the given id or slug. Returns not_found when
// there is none or it is deleted. What it returns may be up to readTTL
// old when another process changed the org (see readCache); opening the
// org's database asks the gate, which does not cache.
func (s *Service) Get(ctx context.Context, idOrSlug string) (Org, error) {
	if o, ok := s.cache.org(idOrSlug); ok {
		return o, nil
	}
	at := time.Now()
	o, err := findOrg(ctx, s.st.Control().SQL(), idOrSlug)
	if err != nil {
		return Org{}, err
	}
	s.cache.putOrg(o, at)
	return o, nil
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func findOrg(ctx context.Context, q queryer, idOrSlug string) (Org, error) {
	query := `SELECT id, slug, name, status, created_at, updated_at FROM orgs WHERE slug = $1 AND status <> 'deleted'`
	if store.ValidOrgID(idOrSlug) {
		query = `SELECT id, slug, name, status, created_at, updated_at FROM orgs WHERE id = $1 AND status <> 'deleted'`
	}
	o, err := scanOrg(q.QueryRowContext(ctx, query, idOrSlug))
	if errors.Is(err, sql.ErrNoRows) {
		return Org{}, apperr.Errorf(apperr.NotFound, "org not found")
	}
	if err != nil {
		return Org{}, fmt.Errorf("find org: %w", err)
	}
	return o, nil
}

func scanOrg(row interface{ Scan(...any) error }) (Org, error) {
	var o Org
	var status string
	if err := row.Scan(&o.ID, &o.Slug, &o.Name, &status, &o.CreatedAt, &o.UpdatedAt); err != nil {
		return Org{}, err
	}
	o.Status = Status(status)
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}
