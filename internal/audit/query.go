package audit

import (
	"context"
	"database/sql"
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
	if err := f.check(); err != nil {
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
		if err := s.prepareRead(ctx, db, logID); err != nil {
			return err
		}
		r, err := s.queryRange(ctx, db, logID, f, below)
		if err != nil {
			return err
		}
		return scanMatching(ctx, db, r, f, true, func(fl *fields, hash []byte) (bool, error) {
			if len(page.Items) == limit {
				next := encodeCursor(page.Items[limit-1].Seq)
				page.NextCursor = &next
				return false, nil
			}
			var e rawEvent
			if err := fl.event(&e, hash); err != nil {
				return false, fmt.Errorf("audit: query: event %d: %w", fl.seq, err)
			}
			if err := e.decodeDetails(); err != nil {
				return false, err
			}
			page.Items = append(page.Items, e.Event)
			return true, nil
		})
	})
	return page, err
}

// queryRange returns the seqs that f's events can have, below `below`:
// the log's stored events (from its base to its head), narrowed to f's
// time window (windowSeqs).
func (s *Service) queryRange(ctx context.Context, db *store.DB, logID string, f Filter, below int64) (seqRange, error) {
	h, err := readHead(ctx, db.SQL())
	if err != nil {
		return seqRange{}, err
	}
	r := seqRange{h.baseSeq + 1, h.seq}
	if below < math.MaxInt64 {
		r.hi = min(r.hi, below-1)
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		w, err := s.windowSeqs(ctx, db, logID, f.Since, f.Until)
		if err != nil {
			return seqRange{}, err
		}
		r = seqRange{max(r.lo, w.lo), min(r.hi, w.hi)}
	}
	return r, nil
}

// bloomWindow is how many blocks' blooms scanMatching reads at a time.
const bloomWindow = 256

// scanMatching calls fn with each event in r that matches f, in seq order
// (newest first when desc), until fn returns false. With keys to filter
// on, it reads only the blocks whose bloom may hold them, and the blocks
// without a bloom; every event it reads is tested against f.
func scanMatching(ctx context.Context, db *store.DB, r seqRange, f Filter, desc bool, fn func(f *fields, hash []byte) (bool, error)) error {
	if r.lo > r.hi {
		return nil
	}
	m := f.matcher()
	stopped := false
	scan := func(lo, hi int64) error {
		return scanEvents(ctx, db.SQL(), lo, hi, desc, func(fl *fields, hash []byte) (bool, error) {
			if !m.match(fl) {
				return true, nil
			}
			more, err := fn(fl, hash)
			stopped = !more
			return more, err
		})
	}
	ks := f.keys()
	if len(ks) == 0 {
		return scan(r.lo, r.hi)
	}
	first, last := blockOf(r.lo), blockOf(r.hi)
	// run is the range of candidate blocks not yet scanned, scanned as one
	// when the next block is not a candidate.
	run := seqRange{1, 0}
	flush := func() error {
		if run.lo > run.hi {
			return nil
		}
		err := scan(max(run.lo, r.lo), min(run.hi, r.hi))
		run = seqRange{1, 0}
		return err
	}
	for w := 0; ; w++ {
		// The window of blocks [wlo, whi], in the walk's order.
		var wlo, whi int64
		if desc {
			whi = last - int64(w)*bloomWindow
			wlo = max(first, whi-bloomWindow+1)
			if whi < first {
				break
			}
		} else {
			wlo = first + int64(w)*bloomWindow
			whi = min(last, wlo+bloomWindow-1)
			if wlo > last {
				break
			}
		}
		skip, err := skippedBlocks(ctx, db, wlo, whi, ks)
		if err != nil {
			return err
		}
		for i := range whi - wlo + 1 {
			b := wlo + i
			if desc {
				b = whi - i
			}
			if skip[b-wlo] {
				if err := flush(); err != nil || stopped {
					return err
				}
				continue
			}
			bs := blockSeqs(b)
			if run.lo > run.hi {
				run = bs
			} else if desc {
				run.lo = bs.lo
			} else {
				run.hi = bs.hi
			}
		}
		if err := flush(); err != nil || stopped {
			return err
		}
	}
	return nil
}

// skippedBlocks reads the blooms of blocks lo to hi and reports, for
// each block, whether its bloom rules out an event with every key of ks
// (false for a block without a bloom). The blooms are tested as the
// driver hands them over, not copied.
func skippedBlocks(ctx context.Context, db *store.DB, lo, hi int64, ks []uint64) ([]bool, error) {
	rows, err := db.SQL().QueryContext(ctx, "SELECT block, bits FROM audit_blooms WHERE block >= $1 AND block <= $2", lo, hi)
	if err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	defer rows.Close()
	skip := make([]bool, hi-lo+1)
	var (
		b    int64
		bits sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&b, &bits); err != nil {
			return nil, fmt.Errorf("audit: query: %w", err)
		}
		if b >= lo && b <= hi {
			skip[b-lo] = !bloom(bits).mayHold(ks)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	return skip, nil
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
	if err := f.check(); err != nil {
		return 0, err
	}
	err = s.logDB(ctx, logID, func(db *store.DB) error {
		if err := s.prepareRead(ctx, db, logID); err != nil {
			return err
		}
		r, err := s.queryRange(ctx, db, logID, f, math.MaxInt64)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(w)
		cw := csv.NewWriter(w)
		if format == CSV {
			if err := cw.Write(csvHeader); err != nil {
				return err
			}
		}
		var e rawEvent
		err = scanMatching(ctx, db, r, f, false, func(fl *fields, hash []byte) (bool, error) {
			if err := fl.event(&e, hash); err != nil {
				return false, fmt.Errorf("audit: export: event %d: %w", fl.seq, err)
			}
			if format == JSONL {
				if err := e.decodeDetails(); err != nil {
					return false, err
				}
				if err := enc.Encode(e.Event); err != nil {
					return false, err
				}
			} else {
				rec := []string{strconv.FormatInt(e.Seq, 10), e.ID, e.Time.Format(time.RFC3339Nano), e.Actor.Type, e.Actor.ID,
					e.Action, e.Resource.Type, e.Resource.ID, e.Outcome, e.IP, e.UserAgent, e.RequestID, string(e.details)}
				for i, v := range rec {
					rec[i] = csvSafe(v)
				}
				if err := cw.Write(rec); err != nil {
					return false, err
				}
				if n%256 == 0 {
					cw.Flush()
				}
			}
			n++
			return true, nil
		})
		if err != nil {
			return err
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
