package records

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"bulwark/internal/apperr"
)

// Query is a parsed list request: equality filters on indexed fields, one
// sort, a page size and where the page starts.
type Query struct {
	Where []Filter
	// Sort is an indexed, non-sensitive field, or "" for the record's id
	// (creation order; "created_at" and "id" in a query string).
	Sort  string
	Desc  bool
	Limit int
	// After is where the page starts (a cursor of a previous page); zero
	// for the first page.
	After Cursor
}

// Filter is where.FIELD=VALUE.
type Filter struct {
	Field Field
	Value json.RawMessage // canonical
}

// Cursor is the position after the last record of a page: its sort key
// and id, and the sort it belongs to.
type Cursor struct {
	Sort string `json:"s"`
	Desc bool   `json:"d,omitempty"`
	Key  []byte `json:"k,omitempty"`
	ID   string `json:"i"`
}

// Limits of a query.
const (
	DefaultLimit = 20
	MaxLimit     = 100
	MaxFilters   = 8
	maxCursor    = 4096
)

// Encode returns the cursor as an opaque string for next_cursor.
func (c Cursor) Encode() string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseQuery reads a list request's query string for collection c:
// where.FIELD=VALUE (indexed fields, equality; at most MaxFilters),
// sort=FIELD or -FIELD (an indexed field that is not sensitive, or
// created_at or id), limit (1 to MaxLimit, default DefaultLimit) and
// cursor (from next_cursor of the same query). Anything else, or a value
// that does not fit, is invalid, naming the parameter.
func ParseQuery(c Collection, q url.Values) (Query, error) {
	out := Query{Limit: DefaultLimit}
	params := make([]string, 0, len(q))
	for p := range q {
		params = append(params, p)
	}
	sort.Strings(params)
	for _, p := range params {
		vs := q[p]
		if len(vs) != 1 {
			return Query{}, fieldErr(clipName(p), "repeated", "query parameter %q is given more than once", clipName(p))
		}
		v := vs[0]
		switch {
		case p == "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				return Query{}, fieldErr("limit", "out_of_range", "limit must be 1 to %d", MaxLimit)
			}
			out.Limit = n
		case p == "sort":
			name, desc := strings.CutPrefix(v, "-")
			out.Desc = desc
			switch name {
			case "id", "created_at":
				out.Sort = ""
			default:
				f, ok := c.field(name)
				if !ok || !f.Indexed || f.Sensitive {
					return Query{}, fieldErr("sort", "not_sortable", "sort takes id, created_at or an indexed field that is not sensitive, with - for descending")
				}
				out.Sort = f.Name
			}
		case p == "cursor":
			// Read after the loop, once the sort is known.
		case strings.HasPrefix(p, "where."):
			name := strings.TrimPrefix(p, "where.")
			f, ok := c.field(name)
			if !ok {
				return Query{}, fieldErr(clipName(p), "unknown", "the collection has no field %q", clipName(name))
			}
			if !f.Indexed {
				return Query{}, fieldErr(p, "not_indexed", "where.%s: only indexed fields can be filtered", name)
			}
			if len(out.Where) == MaxFilters {
				return Query{}, fieldErr(p, "too_many", "at most %d filters", MaxFilters)
			}
			val, err := parseFilterValue(f, v)
			if err != nil {
				return Query{}, err
			}
			out.Where = append(out.Where, Filter{Field: f, Value: val})
		default:
			return Query{}, fieldErr(clipName(p), "unknown", "unknown query parameter %q", clipName(p))
		}
	}
	if v := q.Get("cursor"); v != "" {
		cur, err := parseCursor(v)
		if err != nil || cur.Sort != out.Sort || cur.Desc != out.Desc {
			return Query{}, fieldErr("cursor", "invalid", "cursor is not a next_cursor of this query")
		}
		out.After = cur
	}
	return out, nil
}

func parseCursor(s string) (Cursor, error) {
	var c Cursor
	if len(s) > maxCursor {
		return c, apperr.Errorf(apperr.Invalid, "cursor too long")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, err
	}
	if !validID(c.ID) {
		return c, apperr.Errorf(apperr.Invalid, "cursor id")
	}
	return c, nil
}
