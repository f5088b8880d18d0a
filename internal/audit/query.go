package audit

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
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
// len(args)+1.
func (f Filter) where(args []any) (string, []any, error) {
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
			if !actionRe.MatchString(prefix+".x") && !typeRe.MatchString(prefix) {
				return "", nil, apperr.WithFields("invalid filter", apperr.FieldError{Field: "action", Code: "invalid"})
			}
			// A range, so that the action index serves it: every action
			// that starts with "prefix." sorts in [prefix., prefix/).
			conds = append(conds, "action >= "+arg(prefix+".")+" AND action < "+arg(prefix+"/"))
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
	if !f.Since.IsZero() {
		conds = append(conds, "time >= "+arg(f.Since.UTC()))
	}
	if !f.Until.IsZero() {
		conds = append(conds, "time < "+arg(f.Until.UTC()))
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
	if limit < 1 || limit > MaxLimit {
		return Page{}, apperr.WithFields(fmt.Sprintf("limit must be 1 to %d", MaxLimit), apperr.FieldError{Field: "limit", Code: "out_of_range"})
	}
	where, args, err := f.where(nil)
	if err != nil {
		return Page{}, err
	}
	if cursor != "" {
		below, err := decodeCursor(cursor)
		if err != nil {
			return Page{}, err
		}
		args = append(args, below)
		if where == "" {
			where = " WHERE seq < $" + strconv.Itoa(len(args))
		} else {
			where += " AND seq < $" + strconv.Itoa(len(args))
		}
	}
	page := Page{Items: []Event{}}
	err = s.logDB(ctx, logID, func(db *store.DB) error {
		rows, err := db.SQL().QueryContext(ctx, "SELECT "+eventColumns+" FROM audit_events"+where+
			" ORDER BY seq DESC LIMIT "+strconv.Itoa(limit+1), args...)
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
	where, args, err := f.where(nil)
	if err != nil {
		return 0, err
	}
	err = s.logDB(ctx, logID, func(db *store.DB) error {
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
