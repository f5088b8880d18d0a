package audit

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/store"
)

// Filter selects events. Empty fields select everything.
type Filter struct {
	// Actor is an actor id, or TYPE:ID.
	Actor string
	// Action is an action, or a prefix ending in ".*" ("auth.*").
	Action string
	// Resource is a resource type, or TYPE:ID.
	Resource string
	Outcome  string
	// Since (inclusive) and Until (exclusive) bound the event time.
	Since, Until time.Time
}

// Page is one page of a query, newest first.
type Page struct {
	Items      []Event `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// The limits of a page.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// where builds the WHERE clause of f, with its arguments numbered from
// len(args)+1. bySeq says that the caller bounds the seqs of a time
// window (querySQL): the time conditions then only filter the rows of
// that range. On PostgreSQL they are written so that no index could serve
// them: a plan made for any parameters (pgx prepares its statements, and
// PostgreSQL plans a prepared statement once for all of them) ANDed the
// time index that logs had before migration 5 with the seq range, read
// every event of the window and sorted it, where walking the range newest
// first stops after a page.
func (f Filter) where(args []any, driver store.Driver, bySeq bool) (string, []any, error) {
	var conds []string
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if f.Actor != "" {
		if typ, id, ok := strings.Cut(f.Actor, ":"); ok {
			conds = append(conds, "actor_type = "+arg(typ)+" AND actor_id = "+arg(id))
		} else {
			conds = append(conds, "actor_id = "+arg(f.Actor))
		}
	}
	if f.Action != "" {
		if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok {
			if !isAction(prefix+".x") && !isName(prefix, maxType) {
				return "", nil, apperr.WithFields("invalid filter", apperr.FieldError{Field: "action", Code: "invalid"})
			}
			// A range, so that the action index serves it: every action
			// that starts with "prefix." sorts in [prefix., prefix/)
			// bytewise, which PostgreSQL's default collation may not be.
			col := "action"
			if driver == store.Postgres {
				col = `action COLLATE "C"`
			}
			conds = append(conds, col+" >= "+arg(prefix+".")+" AND "+col+" < "+arg(prefix+"/"))
		} else {
			conds = append(conds, "action = "+arg(f.Action))
		}
	}
	if f.Resource != "" {
		if typ, id, ok := strings.Cut(f.Resource, ":"); ok {
			conds = append(conds, "resource_type = "+arg(typ)+" AND resource_id = "+arg(id))
		} else {
			conds = append(conds, "resource_type = "+arg(f.Resource))
		}
	}
	if f.Outcome != "" {
		switch f.Outcome {
		case Success, Failure, Denied:
		default:
			return "", nil, apperr.WithFields("invalid filter: outcome is success, failure or denied",
				apperr.FieldError{Field: "outcome", Code: "invalid"})
		}
		conds = append(conds, "outcome = "+arg(f.Outcome))
	}
	timeCol := "time"
	if bySeq && driver == store.Postgres {
		timeCol = "time + interval '0 s'"
	}
	if !f.Since.IsZero() {
		conds = append(conds, timeCol+" >= "+arg(f.Since.UTC()))
	}
	if !f.Until.IsZero() {
		conds = append(conds, timeCol+" < "+arg(f.Until.UTC()))
	}
	if len(conds) == 0 {
		return "", args, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// encodeCursor and decodeCursor make the opaque cursor of a page: the seq
// below which the next page starts.
func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("s" + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && len(b) > 1 && b[0] == 's' {
		if seq, err := strconv.ParseInt(string(b[1:]), 10, 64); err == nil && seq > 0 {
			return seq, nil
		}
	}
	return 0, apperr.WithFields("invalid cursor", apperr.FieldError{Field: "cursor", Code: "invalid"})
}

// Query returns one page of log logID's events that match f, newest
// first. limit is 1 to MaxLimit (0: DefaultLimit); cursor is "" or a
// page's NextCursor. Callers that serve a person record the read (Read).
func (s *Service) Query(ctx context.Context, logID string, f Filter, limit int, cursor string) (Page, error) {
	if limit == 0 {
		limit = DefaultLimit
	}
	var err error
	if limit < 1 || limit > MaxLimit {
		return Page{}, apperr.WithFields(fmt.Sprintf("limit must be 1 to %d", MaxLimit), apperr.FieldError{Field: "limit", Code: "out_of_range"})
	}
	if _, _, err := f.where(nil, "", false); err != nil {
		return Page{}, err
	}
	below := int64(math.MaxInt64)
	if cursor != "" {
		if below, err = decodeCursor(cursor); err != nil {
			return Page{}, err
		}
	}
	page := Page{Items: []Event{}}
	err = s.logDB(ctx, logID, func(db *store.DB) error {
		if err := s.chain(ctx, db, logID); err != nil {
			return err
		}
		query, args, err := s.querySQL(ctx, db, logID, f, below, limit+1)
		if err != nil || query == "" {
			return err
		}
		rows, err := db.SQL().QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("audit: query: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var e rawEvent
			if err := scanEvent(rows, &e); err != nil {
				return fmt.Errorf("audit: query: %w", err)
			}
			if len(page.Items) == limit {
				next := encodeCursor(page.Items[limit-1].Seq)
				page.NextCursor = &next
				break
			}
			if err := e.decodeDetails(); err != nil {
				return err
			}
			page.Items = append(page.Items, e.Event)
		}
		return rows.Err()
	})
	return page, err
}

// maxPrefixActions is the most distinct actions a log may have for a
// prefix query to read each action's events from the action index; past
// it, the query filters on the range of the prefix.
const maxPrefixActions = 256

// querySQL returns the statement and arguments of one page of Query: at
// most n events of f with seq < below, newest first; "" when no event can
// match.
//
// A time window becomes a seq range (windowSeqs). An action prefix alone
// (without an actor or a resource, whose indexes serve better) becomes
// one query per action that matches it, each reading its newest events
// from the (action, seq) index, merged newest first: a range of actions
// on that index holds each action's events in seq order, not all of them,
// so a single query would read and sort every event of the prefix.
func (s *Service) querySQL(ctx context.Context, db *store.DB, logID string, f Filter, below int64, n int) (string, []any, error) {
	r := allSeqs
	if below < math.MaxInt64 {
		r.hi = below - 1
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		w, err := s.windowSeqs(ctx, db, logID, f.Since, f.Until)
		if err != nil {
			return "", nil, err
		}
		r = seqRange{max(r.lo, w.lo), min(r.hi, w.hi)}
	}
	if r.lo > r.hi {
		return "", nil, nil
	}
	arms := []Filter{f}
	if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok && f.Actor == "" && f.Resource == "" {
		actions, ok, err := prefixActions(ctx, db, prefix)
		if err != nil {
			return "", nil, err
		}
		if ok {
			if len(actions) == 0 {
				return "", nil, nil
			}
			arms = arms[:0]
			for _, a := range actions {
				g := f
				g.Action = a
				arms = append(arms, g)
			}
		}
	}
	var args []any
	selects := make([]string, len(arms))
	for i, g := range arms {
		where, a, err := g.where(args, db.Driver(), r != allSeqs)
		if err != nil {
			return "", nil, err
		}
		where, args = r.and(where, a)
		selects[i] = "SELECT " + eventColumns + " FROM audit_events" + where + " ORDER BY seq DESC LIMIT " + strconv.Itoa(n)
	}
	if len(selects) == 1 {
		return selects[0], args, nil
	}
	var b strings.Builder
	for i, sel := range selects {
		if i > 0 {
			b.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT * FROM (%s) AS a%d", sel, i)
	}
	b.WriteString(" ORDER BY seq DESC LIMIT " + strconv.Itoa(n))
	return b.String(), args, nil
}

// and adds r's bounds to where, with their arguments after args.
func (r seqRange) and(where string, args []any) (string, []any) {
	var conds []string
	if r.lo > 0 {
		args = append(args, r.lo)
		conds = append(conds, "seq >= $"+strconv.Itoa(len(args)))
	}
	if r.hi < math.MaxInt64 {
		args = append(args, r.hi)
		conds = append(conds, "seq <= $"+strconv.Itoa(len(args)))
	}
	switch {
	case len(conds) == 0:
		return where, args
	case where == "":
		return " WHERE " + strings.Join(conds, " AND "), args
	default:
		return where + " AND " + strings.Join(conds, " AND "), args
	}
}

// prefixActions returns the log's actions that start with prefix and a
// dot, walking the action index from one distinct action to the next (a
// lookup each, not a scan of the events). ok is false when the log has
// more than maxPrefixActions actions. Every action is read and compared
// here, byte for byte, so that the database's collation (which on
// PostgreSQL may not be bytewise) cannot leave one out.
func prefixActions(ctx context.Context, db *store.DB, prefix string) (actions []string, ok bool, err error) {
	rows, err := db.SQL().QueryContext(ctx, `WITH RECURSIVE a(action) AS (
	SELECT MIN(action) FROM audit_events
	UNION ALL
	SELECT (SELECT MIN(action) FROM audit_events WHERE action > a.action) FROM a WHERE a.action IS NOT NULL)
SELECT action FROM a WHERE action IS NOT NULL LIMIT $1`, maxPrefixActions+1)
	if err != nil {
		return nil, false, fmt.Errorf("audit: query: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, false, fmt.Errorf("audit: query: %w", err)
		}
		if n++; n > maxPrefixActions {
			return nil, false, nil
		}
		if strings.HasPrefix(a, prefix+".") {
			actions = append(actions, a)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("audit: query: %w", err)
	}
	return actions, true, nil
}

func (e *rawEvent) decodeDetails() error {
	e.Details = map[string]string{}
	if err := json.Unmarshal(e.details, &e.Details); err != nil {
		return fmt.Errorf("audit: event %d: details: %w", e.Seq, err)
	}
	return nil
}

// The formats of Export.
const (
	JSONL = "jsonl"
	CSV   = "csv"
)

// csvHeader is the first line of a CSV export.
var csvHeader = []string{"seq", "id", "time", "actor_type", "actor_id", "action", "resource_type", "resource_id",
	"outcome", "ip", "user_agent", "request_id", "details"}

// Export writes every event of log logID that matches f to w, oldest
// first, as JSON lines or CSV, streaming. CSV cells that a spreadsheet
// would run as a formula (starting with = + - @ or a tab or CR) get a
// leading apostrophe.
func (s *Service) Export(ctx context.Context, logID string, f Filter, format string, w io.Writer) (n int64, err error) {
	if format != JSONL && format != CSV {
		return 0, apperr.WithFields("format must be jsonl or csv", apperr.FieldError{Field: "format", Code: "invalid"})
	}
	if _, _, err := f.where(nil, "", false); err != nil {
		return 0, err
	}
	err = s.logDB(ctx, logID, func(db *store.DB) error {
		if err := s.chain(ctx, db, logID); err != nil {
			return err
		}
		where, args, err := f.where(nil, db.Driver(), false)
		if err != nil {
			return err
		}
		rows, err := db.SQL().QueryContext(ctx, "SELECT "+eventColumns+" FROM audit_events"+where+" ORDER BY seq", args...)
		if err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		defer rows.Close()
		enc := json.NewEncoder(w)
		cw := csv.NewWriter(w)
		if format == CSV {
			if err := cw.Write(csvHeader); err != nil {
				return err
			}
		}
		var e rawEvent
		for rows.Next() {
			if err := scanEvent(rows, &e); err != nil {
				return fmt.Errorf("audit: export: %w", err)
			}
			if format == JSONL {
				if err := e.decodeDetails(); err != nil {
					return err
				}
				if err := enc.Encode(e.Event); err != nil {
					return err
				}
			} else {
				rec := []string{strconv.FormatInt(e.Seq, 10), e.ID, e.Time.Format(time.RFC3339Nano), e.Actor.Type, e.Actor.ID,
					e.Action, e.Resource.Type, e.Resource.ID, e.Outcome, e.IP, e.UserAgent, e.RequestID, string(e.details)}
				for i, v := range rec {
					rec[i] = csvSafe(v)
				}
				if err := cw.Write(rec); err != nil {
					return err
				}
				if n%256 == 0 {
					cw.Flush()
				}
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("audit: export: %w", err)
		}
		cw.Flush()
		return cw.Error()
	})
	return n, err
}

// csvSafe defuses a cell that a spreadsheet would take for a formula.
func csvSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
