package authz

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/store"
)

// Support access: an operator (staff) sees no org data unless the org
// let them in. An operator asks (Request) with a reason and a duration
// of at most MaxSupport; an owner or admin of the org approves or denies
// (Decide); the grant is live until it expires by itself or the org
// revokes it. Break-glass (BreakGlass, then SecondApprove by another
// operator) is live at once, and the org's owners are told. Every step is
// in the org's audit log; so is every access an operator makes under a
// grant (Accessed).

// MaxSupport is the longest a grant can last.
const MaxSupport = 24 * time.Hour

// The kinds and statuses of a grant.
const (
	KindRequest    = "request"
	KindBreakGlass = "break_glass"

	StatusPending        = "pending"         // awaiting the org's decision
	StatusAwaitingSecond = "awaiting_second" // break-glass awaiting a second operator
	StatusApproved       = "approved"        // live until expires_at
	StatusDenied         = "denied"
	StatusRevoked        = "revoked"
	StatusExpired        = "expired" // approved, and past expires_at (computed)
)

// Grant is an operator's request for access to an org and what became of
// it.
type Grant struct {
	ID              string     `json:"id"`
	OrgID           string     `json:"org_id"`
	OperatorID      string     `json:"operator_id"`
	Kind            string     `json:"kind"`
	Reason          string     `json:"reason"`
	Write           bool       `json:"write"`
	DurationMinutes int        `json:"duration_minutes"`
	Status          string     `json:"status"`
	CreatedAt       time.Time  `json:"created_at"`
	DecidedAt       *time.Time `json:"decided_at"`
	DecidedBy       string     `json:"decided_by,omitempty"`
	ExpiresAt       *time.Time `json:"expires_at"`
}

// Role is the support role the grant gives while live.
func (g Grant) Role() Role {
	if g.Write {
		return SupportWrite
	}
	return SupportRead
}

// Support keeps the grants, in the control database.
type Support struct {
	st          *store.Store
	aud         *audit.Service
	now         func() time.Time
	onBreakGlas func(ctx context.Context, g Grant)
}

// NewSupport returns the grants of st; events go to aud. now is the
// clock of expiry (time.Now if nil).
func NewSupport(st *store.Store, aud *audit.Service, now func() time.Time) *Support {
	if now == nil {
		now = time.Now
	}
	return &Support{st: st, aud: aud, now: now}
}

// OnBreakGlass registers what tells the org's owners of a break-glass
// grant that became live. Call it at startup.
func (s *Support) OnBreakGlass(fn func(ctx context.Context, g Grant)) { s.onBreakGlas = fn }

// ControlSchema returns the table of support grants in the control
// database.
func ControlSchema() store.Schema {
	const t = `CREATE TABLE support_grants (
	id               TEXT PRIMARY KEY,
	org_id           TEXT NOT NULL,
	operator_id      TEXT NOT NULL,
	kind             TEXT NOT NULL CHECK (kind IN ('request', 'break_glass')),
	reason           TEXT NOT NULL,
	write_access     BOOLEAN NOT NULL,
	duration_minutes INTEGER NOT NULL,
	status           TEXT NOT NULL CHECK (status IN ('pending', 'awaiting_second', 'approved', 'denied', 'revoked')),
	created_at       TIMESTAMP NOT NULL,
	decided_at       TIMESTAMP,
	decided_by       TEXT NOT NULL DEFAULT '',
	expires_at       TIMESTAMP
);
CREATE INDEX support_grants_org ON support_grants (org_id, id);
CREATE INDEX support_grants_live ON support_grants (org_id, operator_id, status, expires_at);`
	return store.Schema{Name: "authz", Scope: store.ControlScope, Migrations: []store.Migration{{
		Version: 1, Name: "support_grants", SQLite: t, Postgres: strings.ReplaceAll(t, "TIMESTAMP", "TIMESTAMPTZ"),
	}}}
}

const grantColumns = `id, org_id, operator_id, kind, reason, write_access, duration_minutes, status, created_at, decided_at, decided_by, expires_at`

func (s *Support) scan(row interface{ Scan(...any) error }) (Grant, error) {
	var g Grant
	var decided, expires sql.NullTime
	if err := row.Scan(&g.ID, &g.OrgID, &g.OperatorID, &g.Kind, &g.Reason, &g.Write, &g.DurationMinutes, &g.Status,
		&g.CreatedAt, &decided, &g.DecidedBy, &expires); err != nil {
		return Grant{}, err
	}
	g.CreatedAt = g.CreatedAt.UTC()
	if decided.Valid {
		t := decided.Time.UTC()
		g.DecidedAt = &t
	}
	if expires.Valid {
		t := expires.Time.UTC()
		g.ExpiresAt = &t
		if g.Status == StatusApproved && !s.now().Before(t) {
			g.Status = StatusExpired
		}
	}
	return g, nil
}

// event records e in the control log in tx and returns what copies it
// to the org's log after the commit (grants live in the control
// database; the org's log is in the org's own).
func (s *Support) event(ctx context.Context, tx *store.Tx, g Grant, action string, src audit.Source) (func(), error) {
	e := src.Event(action, audit.Resource{Type: "support_grant", ID: g.ID}, audit.Success, map[string]string{
		"operator": g.OperatorID, "kind": g.Kind, "write": strconv.FormatBool(g.Write),
		"duration_minutes": strconv.Itoa(g.DurationMinutes), "reason": g.Reason, "org_id": g.OrgID})
	if _, err := s.aud.Append(ctx, tx, audit.ControlLog, e); err != nil {
		return nil, err
	}
	return func() {
		delete(e.Details, "org_id")
		_ = s.aud.Record(context.WithoutCancel(ctx), g.OrgID, e)
	}, nil
}

func checkAsk(reason string, minutes int) error {
	var fields []apperr.FieldError
	reason = strings.TrimSpace(reason)
	if n := utf8.RuneCountInString(reason); n < 10 || n > 500 || !utf8.ValidString(reason) {
		fields = append(fields, apperr.FieldError{Field: "reason", Code: "invalid", Message: "say why, in 10 to 500 characters"})
	}
	if minutes < 1 || time.Duration(minutes)*time.Minute > MaxSupport {
		fields = append(fields, apperr.FieldError{Field: "duration_minutes", Code: "out_of_range", Message: "1 to 1440 minutes"})
	}
	if len(fields) > 0 {
		return apperr.WithFields("invalid access request", fields...)
	}
	return nil
}

// Request records operator src's request for access to org orgID; it
// waits for the org's decision.
func (s *Support) Request(ctx context.Context, src audit.Source, orgID, reason string, minutes int, write bool) (Grant, error) {
	return s.ask(ctx, src, orgID, reason, minutes, write, KindRequest, StatusPending, "support.requested")
}

// BreakGlass records an emergency request by operator src: live as soon
// as a second operator approves it (SecondApprove), without the org.
func (s *Support) BreakGlass(ctx context.Context, src audit.Source, orgID, reason string, minutes int, write bool) (Grant, error) {
	return s.ask(ctx, src, orgID, reason, minutes, write, KindBreakGlass, StatusAwaitingSecond, "support.break_glass_requested")
}

func (s *Support) ask(ctx context.Context, src audit.Source, orgID, reason string, minutes int, write bool, kind, status, action string) (Grant, error) {
	if src.Actor.Type != audit.ActorOperator || src.Actor.ID == "" {
		return Grant{}, apperr.Errorf(apperr.Forbidden, "only operators ask for support access")
	}
	if err := checkAsk(reason, minutes); err != nil {
		return Grant{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Grant{}, err
	}
	g := Grant{ID: id.String(), OrgID: orgID, OperatorID: src.Actor.ID, Kind: kind, Reason: strings.TrimSpace(reason),
		Write: write, DurationMinutes: minutes, Status: status}
	var after func()
	err = s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		g.CreatedAt = tx.Now
		if _, err := tx.ExecContext(ctx, `INSERT INTO support_grants (`+grantColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, '', NULL)`, g.ID, g.OrgID, g.OperatorID, g.Kind, g.Reason, g.Write,
			g.DurationMinutes, g.Status, g.CreatedAt); err != nil {
			return fmt.Errorf("store access request: %w", err)
		}
		var err error
		after, err = s.event(ctx, tx, g, action, src)
		return err
	})
	if err != nil {
		return Grant{}, err
	}
	after()
	return g, nil
}

var errNoGrant = apperr.Errorf(apperr.NotFound, "access request not found")

// change moves grant id of org orgID (any org when orgID is "") from one
// of the statuses from to the status to, in one transaction, with event
// action; check, when not nil, may refuse the grant as it is.
func (s *Support) change(ctx context.Context, src audit.Source, orgID, id string, from []string, to, action string, check func(Grant) error) (Grant, error) {
	var g Grant
	var after func()
	err := s.st.Control().InTx(ctx, func(tx *store.Tx) error {
		var err error
		g, err = s.scan(tx.QueryRowContext(ctx, "SELECT "+grantColumns+" FROM support_grants WHERE id = $1", id))
		if errors.Is(err, sql.ErrNoRows) || (err == nil && orgID != "" && g.OrgID != orgID) {
			return errNoGrant
		}
		if err != nil {
			return err
		}
		ok := false
		for _, f := range from {
			ok = ok || g.Status == f
		}
		if !ok {
			return apperr.Errorf(apperr.Conflict, "the access request is %s", g.Status)
		}
		if check != nil {
			if err := check(g); err != nil {
				return err
			}
		}
		now := tx.Now
		g.Status, g.DecidedAt, g.DecidedBy = to, &now, src.Actor.ID
		var expires any
		if to == StatusApproved {
			t := now.Add(time.Duration(g.DurationMinutes) * time.Minute)
			g.ExpiresAt, expires = &t, t
		} else if g.ExpiresAt != nil {
			expires = *g.ExpiresAt
		}
		if _, err := tx.ExecContext(ctx, "UPDATE support_grants SET status = $1, decided_at = $2, decided_by = $3, expires_at = $4 WHERE id = $5",
			to, now, src.Actor.ID, expires, id); err != nil {
			return err
		}
		after, err = s.event(ctx, tx, g, action, src)
		return err
	})
	if err != nil {
		return Grant{}, err
	}
	after()
	return g, nil
}

// Decide approves or denies a pending request of org orgID; src is the
// org's owner or admin (the route decides that).
func (s *Support) Decide(ctx context.Context, src audit.Source, orgID, id string, approve bool) (Grant, error) {
	to, action := StatusDenied, "support.denied"
	if approve {
		to, action = StatusApproved, "support.approved"
	}
	return s.change(ctx, src, orgID, id, []string{StatusPending}, to, action, func(g Grant) error {
		if g.Kind != KindRequest {
			return apperr.Errorf(apperr.Conflict, "a break-glass request is approved by a second operator")
		}
		return nil
	})
}

// Revoke ends a grant of org orgID before its time (or withdraws a
// request not yet decided).
func (s *Support) Revoke(ctx context.Context, src audit.Source, orgID, id string) (Grant, error) {
	return s.change(ctx, src, orgID, id, []string{StatusApproved, StatusPending, StatusAwaitingSecond}, StatusRevoked, "support.revoked", nil)
}

// SecondApprove makes a break-glass request live: src is an operator
// other than the one who asked. The org's owners are told.
func (s *Support) SecondApprove(ctx context.Context, src audit.Source, id string) (Grant, error) {
	if src.Actor.Type != audit.ActorOperator {
		return Grant{}, apperr.Errorf(apperr.Forbidden, "only an operator approves a break-glass request")
	}
	g, err := s.change(ctx, src, "", id, []string{StatusAwaitingSecond}, StatusApproved, "support.break_glass_approved", func(g Grant) error {
		if g.OperatorID == src.Actor.ID {
			return apperr.Errorf(apperr.Forbidden, "a second operator must approve a break-glass request, not the one who asked")
		}
		return nil
	})
	if err == nil && s.onBreakGlas != nil {
		s.onBreakGlas(ctx, g)
	}
	return g, err
}

// List returns the org's requests and grants, newest first (at most 100).
func (s *Support) List(ctx context.Context, orgID string) ([]Grant, error) {
	return s.list(ctx, "org_id", orgID)
}

// Mine returns an operator's requests and grants, newest first.
func (s *Support) Mine(ctx context.Context, operatorID string) ([]Grant, error) {
	return s.list(ctx, "operator_id", operatorID)
}

func (s *Support) list(ctx context.Context, col, v string) ([]Grant, error) {
	rows, err := s.st.Control().SQL().QueryContext(ctx, "SELECT "+grantColumns+" FROM support_grants WHERE "+col+" = $1 ORDER BY id DESC LIMIT 100", v)
	if err != nil {
		return nil, fmt.Errorf("list access requests: %w", err)
	}
	defer rows.Close()
	out := []Grant{}
	for rows.Next() {
		g, err := s.scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// Live returns operatorID's live grant of org orgID: the one that
// expires last, preferring one with write. ok is false when there is
// none.
func (s *Support) Live(ctx context.Context, orgID, operatorID string) (g Grant, ok bool, err error) {
	g, err = s.scan(s.st.Control().SQL().QueryRowContext(ctx, "SELECT "+grantColumns+` FROM support_grants
WHERE org_id = $1 AND operator_id = $2 AND status = 'approved' AND expires_at > $3
ORDER BY write_access DESC, expires_at DESC LIMIT 1`, orgID, operatorID, s.now().UTC()))
	if errors.Is(err, sql.ErrNoRows) {
		return Grant{}, false, nil
	}
	if err != nil {
		return Grant{}, false, fmt.Errorf("read support grant: %w", err)
	}
	return g, true, nil
}

// Accessed records, in the org's log, an access that operator src made
// under grant g (method and route, never content).
func (s *Support) Accessed(ctx context.Context, src audit.Source, g Grant, method, route string) error {
	return s.aud.Record(ctx, g.OrgID, src.Event("support.accessed", audit.Resource{Type: "support_grant", ID: g.ID}, audit.Success,
		map[string]string{"method": method, "route": route, "write": strconv.FormatBool(g.Write)}))
}
