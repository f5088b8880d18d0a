package records

import (
	"net/url"
	"testing"

	"bulwark/internal/apperr"
)

var fuzzCollection = Collection{ID: "01a24cc7-0000-7000-8000-000000000000", Name: "people", Fields: []Field{
	{Name: "name", Type: TypeText, Indexed: true},
	{Name: "age", Type: TypeNumber, Indexed: true},
	{Name: "active", Type: TypeBool, Indexed: true},
	{Name: "born", Type: TypeTime, Indexed: true},
	{Name: "ssn", Type: TypeText, Indexed: true, Sensitive: true},
	{Name: "notes", Type: TypeText},
	{Name: "extra", Type: TypeJSON},
}}

// FuzzParseQuery feeds query strings to the list parser: it never panics,
// refuses with invalid only, and what it accepts is within the limits,
// on indexed fields, sorted on a field that may be sorted, with a cursor
// of the same sort.
func FuzzParseQuery(f *testing.F) {
	c := Cursor{Sort: "age", Key: numberKey(3), ID: "01a24cc7-0000-7000-8000-000000000001"}
	for _, s := range []string{"", "limit=5", "sort=-age&where.name=x", "where.age=1e3&where.active=true", "where.born=2026-01-01T00:00:00Z",
		"sort=age&cursor=" + c.Encode(), "sort=ssn", "where.notes=1", "where.ssn=123", "cursor=%%", "limit=1&limit=2", "where.=x",
		"sort=created_at&cursor=eyJzIjoiIiwiaSI6IngifQ", "where.age=NaN", "where.age=-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(fuzzCollection, v)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Invalid || len(apperr.FieldsOf(err)) != 1 {
				t.Fatalf("%q: %v (%s)", raw, err, apperr.CodeOf(err))
			}
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit || len(q.Where) > MaxFilters {
			t.Fatalf("%q: accepted %+v", raw, q)
		}
		for _, w := range q.Where {
			if !w.Field.Indexed {
				t.Fatalf("%q: filter on %s", raw, w.Field.Name)
			}
			if _, err := encodeKey(w.Field, w.Value); err != nil {
				t.Fatalf("%q: filter value %s cannot be keyed: %v", raw, w.Value, err)
			}
		}
		if q.Sort != "" {
			f, ok := fuzzCollection.field(q.Sort)
			if !ok || !f.Indexed || f.Sensitive {
				t.Fatalf("%q: sort on %q", raw, q.Sort)
			}
		}
		if q.After.ID != "" && (q.After.Sort != q.Sort || q.After.Desc != q.Desc || !validID(q.After.ID)) {
			t.Fatalf("%q: cursor %+v for sort %q", raw, q.After, q.Sort)
		}
	})
}

// FuzzParseBody feeds record bodies to the validator: it never panics,
// refuses with invalid only, and what it accepts has only the
// collection's fields, each of which can be keyed when indexed.
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"a","age":1}`, `{"age":"x"}`, `{"born":"2026-01-01T00:00:00+01:00"}`, `{"extra":[[[]]]}`,
		`{"extra":{"a":"\"]"}}`, `null`, `[]`, `{"name":null}`, `{"age":1e400}`, `{"nope":1}`, `{"active":true} x`} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, partial bool) {
		v, err := parseBody(fuzzCollection, body, partial)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("%q: %v", body, err)
			}
			return
		}
		for name, val := range v {
			fd, ok := fuzzCollection.field(name)
			if !ok {
				t.Fatalf("%q: accepted unknown field %q", body, name)
			}
			if val == nil {
				if !partial {
					t.Fatalf("%q: a removal outside PATCH", body)
				}
				continue
			}
			if fd.Indexed {
				if _, err := encodeKey(fd, val); err != nil {
					t.Fatalf("%q: %s=%s cannot be keyed: %v", body, name, val, err)
				}
			}
		}
	})
}
