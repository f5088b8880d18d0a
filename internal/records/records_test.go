package records_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/keys"
	"bulwark/internal/org"
	"bulwark/internal/records"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

type env struct {
	st    *store.Store
	opts  store.Options
	ring  *keys.Ring
	aud   *audit.Service
	orgs  *org.Service
	svc   *records.Service
	clock *storetest.Clock
	org   string
}

var alice = audit.Source{Actor: audit.Actor{Type: audit.ActorUser, ID: "u-alice"}, IP: "203.0.113.9", RequestID: "req-1"}

func newEnv(t *testing.T, opts store.Options) *env {
	t.Helper()
	ctx := context.Background()
	clk := storetest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	opts.Now = clk.Now
	st, err := store.Open(ctx, opts, org.ControlSchema(), org.OrgSchema(), keys.ControlSchema(), keys.OrgSchema(),
		audit.ControlSchema(), audit.OrgSchema(), records.OrgSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := keys.OpenLocalKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	aud, err := audit.New(st, ring, audit.Options{Now: clk.Now, IPKey: bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	orgs := org.NewService(st, nil)
	orgs.OnCreate(func(ctx context.Context, tx *store.Tx, o org.Org) error { return ring.CreateOrgKeys(ctx, tx, o.ID) })
	o, err := orgs.Create(ctx, "Acme", "acme")
	if err != nil {
		t.Fatal(err)
	}
	return &env{st: st, opts: opts, ring: ring, aud: aud, orgs: orgs, svc: records.New(st, ring, aud), clock: clk, org: o.ID}
}

func wantCode(t *testing.T, err error, code apperr.Code) {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("err = %v (%s), want %s", err, apperr.CodeOf(err), code)
	}
}

func wantField(t *testing.T, err error, field, code string) {
	t.Helper()
	wantCode(t, err, apperr.Invalid)
	fs := apperr.FieldsOf(err)
	if len(fs) != 1 || fs[0].Field != field || fs[0].Code != code {
		t.Fatalf("field errors %+v, want %s/%s", fs, field, code)
	}
}

// people is a collection with every kind of field.
var people = records.NewCollection{Name: "people", Fields: []records.Field{
	{Name: "name", Type: records.TypeText, Required: true, Indexed: true},
	{Name: "age", Type: records.TypeNumber, Indexed: true},
	{Name: "active", Type: records.TypeBool, Indexed: true},
	{Name: "born", Type: records.TypeTime, Indexed: true},
	{Name: "ssn", Type: records.TypeText, Indexed: true, Sensitive: true},
	{Name: "diagnosis", Type: records.TypeText, Sensitive: true},
	{Name: "notes", Type: records.TypeText},
	{Name: "extra", Type: records.TypeJSON},
}}

func (e *env) collection(t *testing.T, in records.NewCollection) records.Collection {
	t.Helper()
	c, err := e.svc.CreateCollection(context.Background(), alice, e.org, in)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) create(t *testing.T, coll string, fields map[string]any) records.Record {
	t.Helper()
	body, _ := json.Marshal(fields)
	r, err := e.svc.Create(context.Background(), alice, e.org, coll, body)
	if err != nil {
		t.Fatalf("create %s: %v", body, err)
	}
	return r
}

// events returns the org's audit events with the action, oldest first.
func (e *env) events(t *testing.T, action string) []audit.Event {
	t.Helper()
	var out []audit.Event
	cursor := ""
	for {
		p, err := e.aud.Query(context.Background(), e.org, audit.Filter{Action: action}, 100, cursor)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Items...)
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func TestCollections_ValidateAndAudit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		c := e.collection(t, people)
		if c.ID == "" || len(c.Fields) != len(people.Fields) {
			t.Fatalf("created %+v", c)
		}
		_, err := e.svc.CreateCollection(ctx, alice, e.org, people)
		wantCode(t, err, apperr.Conflict)
		for _, tc := range []struct {
			in          records.NewCollection
			field, code string
		}{
			{records.NewCollection{Name: "Bad Name"}, "name", "invalid"},
			{records.NewCollection{Name: "x", Fields: []records.Field{{Name: "id", Type: "text"}}}, "fields[0].name", "reserved"},
			{records.NewCollection{Name: "x", Fields: []records.Field{{Name: "a", Type: "text"}, {Name: "a", Type: "bool"}}}, "fields[1].name", "duplicate"},
			{records.NewCollection{Name: "x", Fields: []records.Field{{Name: "a", Type: "blob"}}}, "fields[0].type", "invalid"},
			{records.NewCollection{Name: "x", Fields: []records.Field{{Name: "a", Type: "json", Indexed: true}}}, "fields[0].indexed", "not_indexable"},
			{records.NewCollection{Name: "x", RetentionDays: -1}, "retention_days", "out_of_range"},
		} {
			_, err := e.svc.CreateCollection(ctx, alice, e.org, tc.in)
			wantField(t, err, tc.field, tc.code)
		}
		many := records.NewCollection{Name: "wide"}
		for i := range records.MaxFields + 1 {
			many.Fields = append(many.Fields, records.Field{Name: fmt.Sprintf("f%d", i), Type: "text"})
		}
		_, err = e.svc.CreateCollection(ctx, alice, e.org, many)
		wantField(t, err, "fields", "too_many")
		// Fields can be added, not required; retention can change.
		days := 30
		_, err = e.svc.UpdateCollection(ctx, alice, e.org, "people", records.CollectionChange{AddFields: []records.Field{{Name: "z", Type: "text", Required: true}}})
		wantField(t, err, "add_fields[0].required", "not_allowed")
		c2, err := e.svc.UpdateCollection(ctx, alice, e.org, "people", records.CollectionChange{RetentionDays: &days, AddFields: []records.Field{{Name: "email", Type: "text"}}})
		if err != nil || c2.RetentionDays != 30 || len(c2.Fields) != len(people.Fields)+1 {
			t.Fatalf("update: %+v, %v", c2, err)
		}
		list, err := e.svc.Collections(ctx, e.org, 10, "")
		if err != nil || len(list) != 1 || list[0].Name != "people" {
			t.Fatalf("list %+v %v", list, err)
		}
		if got := len(e.events(t, "collection.created")) + len(e.events(t, "collection.updated")); got != 2 {
			t.Fatalf("%d collection events, want 2", got)
		}
		e.create(t, "people", map[string]any{"name": "Ann"})
		if err := e.svc.DeleteCollection(ctx, alice, e.org, "people"); err != nil {
			t.Fatal(err)
		}
		ev := e.events(t, "collection.deleted")
		if len(ev) != 1 || ev[0].Details["count"] != "1" {
			t.Fatalf("delete events %+v", ev)
		}
		_, err = e.svc.Collection(ctx, e.org, "people")
		wantCode(t, err, apperr.NotFound)
	})
}

// A record is validated against its collection: an unknown field, a
// wrong type, a missing required field, a value too large are each
// refused naming the field, and nothing is written; a created, changed
// and deleted record is audited in the same transaction.
func TestRecords_CRUDValidatesAndAudits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.collection(t, people)
		for _, tc := range []struct {
			body        string
			field, code string
		}{
			{`{"name":"a","nope":1}`, "nope", "unknown"},
			{`{"name":5}`, "name", "wrong_type"},
			{`{"age":5}`, "name", "required"},
			{`{"name":null}`, "name", "required"},
			{`{"name":"a","age":"old"}`, "age", "wrong_type"},
			{`{"name":"a","age":1e999}`, "age", "out_of_range"},
			{`{"name":"a","active":"yes"}`, "active", "wrong_type"},
			{`{"name":"a","born":"yesterday"}`, "born", "wrong_type"},
			{`{"name":"` + strings.Repeat("x", records.MaxIndexedText+1) + `"}`, "name", "too_large"},
			{`{"name":"a","extra":` + strings.Repeat("[", records.MaxJSONDepth+1) + strings.Repeat("]", records.MaxJSONDepth+1) + `}`, "extra", "too_deep"},
			{`{"name":"a","notes":"` + strings.Repeat("n", records.MaxRecordBytes) + `"}`, "notes", "too_large"},
			{`[1]`, "", "not_an_object"},
			{`{"name":"a"} {}`, "", "not_an_object"},
		} {
			_, err := e.svc.Create(ctx, alice, e.org, "people", []byte(tc.body))
			wantField(t, err, tc.field, tc.code)
		}
		_, err := e.svc.Create(ctx, alice, e.org, "nobody", []byte(`{}`))
		wantCode(t, err, apperr.NotFound)
		if n := len(e.events(t, "record.created")); n != 0 {
			t.Fatalf("%d events for refused writes", n)
		}
		r := e.create(t, "people", map[string]any{"name": "Ann", "age": 41, "active": true, "born": "1985-02-03T04:05:06+02:00",
			"ssn": "123-45-6789", "diagnosis": "flu", "notes": "likes tea", "extra": map[string]any{"k": []int{1, 2}}})
		got, err := e.svc.Get(ctx, alice, e.org, "people", r.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(got)
		for _, want := range []string{`"name":"Ann"`, `"age":41`, `"born":"1985-02-03T02:05:06Z"`, `"ssn":"123-45-6789"`, `"extra":{"k":[1,2]}`, `"id":"` + r.ID} {
			if !strings.Contains(string(b), want) {
				t.Fatalf("record %s lacks %s", b, want)
			}
		}
		// PATCH: stale If-Match refused; null removes; required stays.
		_, err = e.svc.Update(ctx, alice, e.org, "people", r.ID, r.Version+1, []byte(`{"age":42}`))
		wantCode(t, err, apperr.PreconditionFailed)
		_, err = e.svc.Update(ctx, alice, e.org, "people", r.ID, 0, []byte(`{"name":null}`))
		wantField(t, err, "name", "required")
		u, err := e.svc.Update(ctx, alice, e.org, "people", r.ID, r.Version, []byte(`{"age":42,"notes":null}`))
		if err != nil || u.Version != r.Version+1 || string(u.Fields["age"]) != "42" || u.Fields["notes"] != nil || string(u.Fields["name"]) != `"Ann"` {
			t.Fatalf("update %+v %v", u, err)
		}
		_, err = e.svc.Update(ctx, alice, e.org, "people", r.ID, r.Version, []byte(`{"age":43}`))
		wantCode(t, err, apperr.PreconditionFailed)
		// The age index follows the change.
		q, err := records.ParseQuery(mustColl(t, e, "people"), url.Values{"where.age": {"42"}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := e.svc.List(ctx, alice, e.org, "people", q, false)
		if err != nil || len(p.Items) != 1 || p.Items[0].ID != r.ID {
			t.Fatalf("where.age=42: %+v %v", p, err)
		}
		err = e.svc.Delete(ctx, alice, e.org, "people", r.ID, r.Version)
		wantCode(t, err, apperr.PreconditionFailed)
		if err := e.svc.Delete(ctx, alice, e.org, "people", r.ID, u.Version); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Get(ctx, alice, e.org, "people", r.ID, false)
		wantCode(t, err, apperr.NotFound)
		_, err = e.svc.Get(ctx, alice, e.org, "people", "not-an-id", false)
		wantCode(t, err, apperr.NotFound)
		for _, a := range []string{"record.created", "record.updated", "record.deleted"} {
			ev := e.events(t, a)
			if len(ev) != 1 || ev[0].Resource.ID != r.ID || ev[0].Details["collection"] != "people" || ev[0].Actor.ID != "u-alice" {
				t.Fatalf("%s events %+v", a, ev)
			}
			for k, v := range ev[0].Details {
				if strings.Contains(v, "Ann") || strings.Contains(v, "42") || strings.Contains(v, "123-45") {
					t.Fatalf("%s detail %s=%q holds record content", a, k, v)
				}
			}
		}
		if ev := e.events(t, "record.updated"); ev[0].Details["field_names"] != "age,notes" {
			t.Fatalf("update event fields %q", ev[0].Details["field_names"])
		}
		rep, err := e.aud.Verify(ctx, e.org)
		if err != nil || !rep.OK {
			t.Fatalf("verify %+v %v", rep, err)
		}
	})
}

func mustColl(t *testing.T, e *env, name string) records.Collection {
	t.Helper()
	c, err := e.svc.Collection(context.Background(), e.org, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Sensitive fields are left out (and named) for a caller without
// records.sensitive; a read in clear is audited, one event per record or
// per page, and only when a sensitive value is shown.
func TestRecords_SensitiveFieldsMaskedAndReadsAudited(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		c := e.collection(t, people)
		r := e.create(t, "people", map[string]any{"name": "Ann", "ssn": "111-22-3333", "diagnosis": "flu"})
		plain := e.create(t, "people", map[string]any{"name": "Bob"})
		masked, err := e.svc.Get(ctx, alice, e.org, "people", r.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(masked)
		if strings.Contains(string(b), "111-22") || strings.Contains(string(b), "flu") || !strings.Contains(string(b), `"masked":["ssn","diagnosis"]`) {
			t.Fatalf("masked read %s", b)
		}
		if n := len(e.events(t, "record.sensitive_read")); n != 0 {
			t.Fatalf("%d sensitive-read events after a masked read", n)
		}
		if _, err := e.svc.Get(ctx, alice, e.org, "people", plain.ID, true); err != nil {
			t.Fatal(err)
		}
		if n := len(e.events(t, "record.sensitive_read")); n != 0 {
			t.Fatal("a record without sensitive values was audited as a sensitive read")
		}
		clear, err := e.svc.Get(ctx, alice, e.org, "people", r.ID, true)
		if err != nil || string(clear.Fields["ssn"]) != `"111-22-3333"` || len(clear.Masked) != 0 {
			t.Fatalf("clear read %+v %v", clear, err)
		}
		ev := e.events(t, "record.sensitive_read")
		if len(ev) != 1 || ev[0].Resource.ID != r.ID || ev[0].Details["field_names"] != "ssn,diagnosis" {
			t.Fatalf("events %+v", ev)
		}
		q, _ := records.ParseQuery(c, url.Values{})
		page, err := e.svc.List(ctx, alice, e.org, "people", q, true)
		if err != nil || len(page.Items) != 2 {
			t.Fatal(page, err)
		}
		ev = e.events(t, "record.sensitive_read")
		if len(ev) != 2 || ev[1].Resource.Type != "collection" || ev[1].Details["count"] != "1" || ev[1].Details["first_id"] != r.ID {
			t.Fatalf("list events %+v", ev)
		}
		// Equality on a sensitive field goes through its blind index.
		q, err = records.ParseQuery(c, url.Values{"where.ssn": {"111-22-3333"}})
		if err != nil {
			t.Fatal(err)
		}
		page, err = e.svc.List(ctx, alice, e.org, "people", q, false)
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != r.ID {
			t.Fatalf("where.ssn: %+v %v", page, err)
		}
		_, err = records.ParseQuery(c, url.Values{"sort": {"ssn"}})
		wantField(t, err, "sort", "not_sortable")
	})
}

// Lists filter on indexed fields, sort both ways on any indexed field
// that is not sensitive (records without a value first), and page through
// every record exactly once with cursors.
func TestList_FiltersSortsAndPaginates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		c := e.collection(t, people)
		ages := []float64{5, -3.5, 100, 0, 7, 7, 42, -100, 1e9, 2}
		for i, a := range ages {
			e.create(t, "people", map[string]any{"name": fmt.Sprintf("p%02d", i), "age": a, "active": i%2 == 0})
		}
		e.create(t, "people", map[string]any{"name": "no-age"})
		walk := func(v url.Values) []string {
			var names []string
			for range 20 {
				q, err := records.ParseQuery(c, v)
				if err != nil {
					t.Fatal(err)
				}
				p, err := e.svc.List(ctx, alice, e.org, "people", q, false)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range p.Items {
					var n string
					json.Unmarshal(r.Fields["name"], &n)
					var a float64
					if r.Fields["age"] != nil {
						json.Unmarshal(r.Fields["age"], &a)
						n += fmt.Sprintf("=%g", a)
					}
					names = append(names, n)
				}
				if p.Next == nil {
					return names
				}
				v.Set("cursor", p.Next.Encode())
			}
			t.Fatal("no last page")
			return nil
		}
		asc := walk(url.Values{"sort": {"age"}, "limit": {"3"}})
		want := "no-age p07=-100 p01=-3.5 p03=0 p09=2 p00=5 p04=7 p05=7 p06=42 p02=100 p08=1e+09"
		if got := strings.Join(asc, " "); got != want {
			t.Fatalf("sort=age:\n got %s\nwant %s", got, want)
		}
		desc := walk(url.Values{"sort": {"-age"}, "limit": {"4"}})
		if got := strings.Join(desc, " "); got != "p08=1e+09 p02=100 p06=42 p05=7 p04=7 p00=5 p09=2 p03=0 p01=-3.5 p07=-100 no-age" {
			t.Fatalf("sort=-age: %s", got)
		}
		byID := walk(url.Values{"limit": {"2"}})
		if len(byID) != 11 || byID[0] != "p00=5" || byID[10] != "no-age" {
			t.Fatalf("default order: %v", byID)
		}
		active := walk(url.Values{"where.active": {"true"}, "sort": {"-age"}, "limit": {"2"}})
		if got := strings.Join(active, " "); got != "p08=1e+09 p02=100 p06=42 p04=7 p00=5" {
			t.Fatalf("where.active=true: %s", got)
		}
		both := walk(url.Values{"where.active": {"false"}, "where.age": {"7"}})
		if got := strings.Join(both, " "); got != "p05=7" {
			t.Fatalf("two filters: %s", got)
		}
		// A field added later: records made before it have no value and
		// are listed first when sorting on it.
		if _, err := e.svc.UpdateCollection(ctx, alice, e.org, "people", records.CollectionChange{
			AddFields: []records.Field{{Name: "rank", Type: records.TypeNumber, Indexed: true}}}); err != nil {
			t.Fatal(err)
		}
		c = mustColl(t, e, "people")
		e.create(t, "people", map[string]any{"name": "ranked", "rank": -1})
		ranked := walk(url.Values{"sort": {"rank"}, "limit": {"5"}})
		if len(ranked) != 12 || ranked[11] != "ranked" {
			t.Fatalf("sort=rank after the field was added: %v", ranked)
		}
		// A cursor of another sort, a forged cursor and bad parameters are
		// refused naming the parameter.
		q, _ := records.ParseQuery(c, url.Values{"sort": {"age"}, "limit": {"2"}})
		p, err := e.svc.List(ctx, alice, e.org, "people", q, false)
		if err != nil || p.Next == nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			v           url.Values
			field, code string
		}{
			{url.Values{"sort": {"-age"}, "cursor": {p.Next.Encode()}}, "cursor", "invalid"},
			{url.Values{"sort": {"age"}, "cursor": {"!!"}}, "cursor", "invalid"},
			{url.Values{"limit": {"0"}}, "limit", "out_of_range"},
			{url.Values{"limit": {"101"}}, "limit", "out_of_range"},
			{url.Values{"where.notes": {"x"}}, "where.notes", "not_indexed"},
			{url.Values{"where.nope": {"x"}}, "where.nope", "unknown"},
			{url.Values{"where.age": {"old"}}, "where.age", "wrong_type"},
			{url.Values{"sort": {"notes"}}, "sort", "not_sortable"},
			{url.Values{"page": {"2"}}, "page", "unknown"},
			{url.Values{"limit": {"1", "2"}}, "limit", "repeated"},
		} {
			_, err := records.ParseQuery(c, tc.v)
			wantField(t, err, tc.field, tc.code)
		}
	})
}

// Records older than their collection's retention are purged in
// batches, one audit event per batch; younger ones and collections
// without retention stay.
func TestPurge_RemovesExpiredRecordsInAuditedBatches(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.collection(t, records.NewCollection{Name: "logs", RetentionDays: 7, Fields: []records.Field{{Name: "msg", Type: "text", Indexed: true}}})
		e.collection(t, records.NewCollection{Name: "keep", Fields: []records.Field{{Name: "msg", Type: "text"}}})
		old := records.PurgeBatch + 20
		for i := range old {
			e.create(t, "logs", map[string]any{"msg": fmt.Sprint("old", i)})
		}
		e.create(t, "keep", map[string]any{"msg": "forever"})
		e.clock.Add(6 * 24 * time.Hour)
		young := e.create(t, "logs", map[string]any{"msg": "young"})
		e.clock.Add(2 * 24 * time.Hour)
		n, err := e.svc.Purge(ctx, e.org, e.clock.Now())
		if err != nil || n != old {
			t.Fatalf("purged %d, %v; want %d", n, err, old)
		}
		ev := e.events(t, "record.purged")
		if len(ev) != 2 || ev[0].Details["count"] != fmt.Sprint(records.PurgeBatch) || ev[1].Details["count"] != "20" || ev[0].Actor.Type != audit.ActorSystem {
			t.Fatalf("purge events %+v", ev)
		}
		q, _ := records.ParseQuery(mustColl(t, e, "logs"), url.Values{})
		p, err := e.svc.List(ctx, alice, e.org, "logs", q, false)
		if err != nil || len(p.Items) != 1 || p.Items[0].ID != young.ID {
			t.Fatalf("left %+v %v", p.Items, err)
		}
		q, _ = records.ParseQuery(mustColl(t, e, "keep"), url.Values{})
		if p, err := e.svc.List(ctx, alice, e.org, "keep", q, false); err != nil || len(p.Items) != 1 {
			t.Fatalf("keep: %+v %v", p.Items, err)
		}
		// No orphaned index keys are left.
		odb, err := e.st.AcquireOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		defer odb.Release()
		var keysLeft int
		if err := odb.DB().SQL().QueryRow("SELECT COUNT(*) FROM record_keys").Scan(&keysLeft); err != nil || keysLeft != 1 {
			t.Fatalf("%d index keys left, %v; want 1", keysLeft, err)
		}
		if n, err := e.svc.Purge(ctx, e.org, e.clock.Now()); err != nil || n != 0 {
			t.Fatalf("second purge %d %v", n, err)
		}
	})
}

// No value of a field that is not indexed, nor of a sensitive field, is
// ever written in clear: neither in the SQLite files (database and WAL)
// nor in any PostgreSQL row of the org's database. An indexed field that
// is not sensitive is in clear (its marker is found), which shows that
// the search would see a clear value.
func TestRecords_OnlyIndexedPlainFieldsAreInClear(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.collection(t, people)
		secrets := map[string]string{
			"ssn":       "MARKERSSN4242",
			"diagnosis": "MARKERDIAGNOSIS",
			"notes":     "MARKERNOTES",
		}
		for i := range 20 {
			r := e.create(t, "people", map[string]any{"name": "MARKERCLEARNAME", "ssn": secrets["ssn"], "diagnosis": secrets["diagnosis"],
				"notes": secrets["notes"], "extra": map[string]string{"x": "MARKERJSON"}})
			if i%2 == 0 {
				if _, err := e.svc.Update(ctx, alice, e.org, "people", r.ID, 0, []byte(`{"notes":"MARKERNOTES2"}`)); err != nil {
					t.Fatal(err)
				}
			}
		}
		dump := e.rawOrgData(t)
		if !bytes.Contains(dump, []byte("MARKERCLEARNAME")) {
			t.Fatal("the indexed clear field is not in the dump: the dump does not see the data")
		}
		for _, m := range []string{"MARKERSSN4242", "MARKERDIAGNOSIS", "MARKERNOTES", "MARKERNOTES2", "MARKERJSON"} {
			if bytes.Contains(dump, []byte(m)) {
				t.Errorf("%s is stored in clear", m)
			}
		}
	})
}

// rawOrgData is every byte the org's database holds, read behind the
// store's back: the SQLite file and its WAL, or every row of every table
// of the PostgreSQL database as text.
func (e *env) rawOrgData(t *testing.T) []byte {
	t.Helper()
	if e.opts.Driver == store.SQLite {
		var all []byte
		for _, suffix := range []string{"", "-wal"} {
			b, err := os.ReadFile(filepath.Join(e.opts.DataDir, "orgs", e.org+".db"+suffix))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	}
	db, err := sql.Open("pgx", storetest.OrgDBURL(t, e.opts, e.org))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := db.Query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		tables.Scan(&n)
		names = append(names, n)
	}
	tables.Close()
	var all []byte
	for _, n := range names {
		rows, err := db.Query(`SELECT t::text FROM "` + n + `" t`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			all = append(all, s...)
			all = append(all, '\n')
			// bytea prints as hex: decode what looks like it as well.
			all = append(all, unhex(s)...)
		}
		rows.Close()
	}
	return all
}

// unhex decodes every \x... run of s.
func unhex(s string) []byte {
	var out []byte
	for _, part := range strings.Split(s, `\\x`) {
		end := 0
		for end < len(part) && strings.ContainsRune("0123456789abcdef", rune(part[end])) {
			end++
		}
		for i := 0; i+1 < end; i += 2 {
			var b byte
			fmt.Sscanf(part[i:i+2], "%02x", &b)
			out = append(out, b)
		}
		out = append(out, ' ')
	}
	return out
}

// Concurrent writes to one record without If-Match all land, one after
// another (none is refused as stale); with the same If-Match, exactly one
// lands.
func TestRecords_ConcurrentWritesSerialize(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.collection(t, people)
		r := e.create(t, "people", map[string]any{"name": "Ann", "age": 0})
		const n = 8
		errs := make(chan error, n)
		for i := range n {
			go func() {
				_, err := e.svc.Update(ctx, alice, e.org, "people", r.ID, 0, []byte(fmt.Sprintf(`{"age":%d}`, i+1)))
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		got, err := e.svc.Get(ctx, alice, e.org, "people", r.ID, false)
		if err != nil || got.Version != n+1 {
			t.Fatalf("version %d, %v; want %d", got.Version, err, n+1)
		}
		ok := make(chan bool, n)
		for range n {
			go func() {
				_, err := e.svc.Update(ctx, alice, e.org, "people", r.ID, got.Version, []byte(`{"age":99}`))
				if err != nil && apperr.CodeOf(err) != apperr.PreconditionFailed {
					t.Error(err)
				}
				ok <- err == nil
			}()
		}
		wins := 0
		for range n {
			if <-ok {
				wins++
			}
		}
		if wins != 1 {
			t.Fatalf("%d conditional writes with one ETag landed, want 1", wins)
		}
	})
}

// After a key rotation, the re-encryption of records.Sealed rewrites
// every record under the new data key version, and every record still
// opens with its fields as they were.
func TestRecords_ReencryptedAfterRotation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.collection(t, people)
		var ids []string
		for i := range 30 {
			ids = append(ids, e.create(t, "people", map[string]any{"name": fmt.Sprint("p", i), "ssn": fmt.Sprint("ssn-", i)}).ID)
		}
		v, err := e.ring.RotateOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		x, err := keys.NewReencryptor(e.ring, records.Sealed())
		if err != nil {
			t.Fatal(err)
		}
		p, err := x.Run(ctx, e.org, nil)
		if err != nil || !p.Finished || p.Rewrote != 30 || p.Failed != 0 {
			t.Fatalf("re-encryption %+v, %v", p, err)
		}
		odb, err := e.st.AcquireOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := odb.DB().SQL().Query("SELECT data FROM records")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var data []byte
			rows.Scan(&data)
			if got := int(data[1])<<24 | int(data[2])<<16 | int(data[3])<<8 | int(data[4]); got != v {
				t.Errorf("a record sealed with version %d after rotating to %d", got, v)
			}
		}
		rows.Close()
		odb.Release()
		for i, id := range ids {
			r, err := e.svc.Get(ctx, alice, e.org, "people", id, true)
			if err != nil || string(r.Fields["ssn"]) != fmt.Sprintf(`"ssn-%d"`, i) {
				t.Fatalf("record %d after re-encryption: %+v %v", i, r, err)
			}
		}
	})
}

// A sealed record copied over another row, or into another collection,
// does not open: the read fails rather than show another record's data.
func TestRecords_MovedCiphertextDoesNotOpen(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newEnv(t, opts)
		e.collection(t, people)
		e.collection(t, records.NewCollection{Name: "other", Fields: []records.Field{{Name: "name", Type: records.TypeText}}})
		a := e.create(t, "people", map[string]any{"name": "Ann", "diagnosis": "SECRETA"})
		b := e.create(t, "people", map[string]any{"name": "Bob"})
		o := e.create(t, "other", map[string]any{"name": "Otto"})
		odb, err := e.st.AcquireOrg(ctx, e.org)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{b.ID, o.ID} {
			if _, err := odb.DB().SQL().Exec("UPDATE records SET data = (SELECT data FROM records WHERE id = $1) WHERE id = $2", a.ID, target); err != nil {
				t.Fatal(err)
			}
		}
		odb.Release()
		for _, tc := range []struct{ coll, id string }{{"people", b.ID}, {"other", o.ID}} {
			r, err := e.svc.Get(ctx, alice, e.org, tc.coll, tc.id, true)
			if err == nil {
				t.Fatalf("%s/%s opened with another row's data: %+v", tc.coll, tc.id, r)
			}
		}
		if r, err := e.svc.Get(ctx, alice, e.org, "people", a.ID, true); err != nil || string(r.Fields["diagnosis"]) != `"SECRETA"` {
			t.Fatalf("the original: %+v %v", r, err)
		}
	})
}

// A record is validated, sealed and keyed before its transaction, against
// the collection as this node knows it (cached for a second). When
// another node has changed the collection meanwhile, the creation follows
// the collection as it is: a field just added is accepted, and the new
// record gets the key of an indexed field just added, so that a sort on
// it lists every record.
func TestRecords_CreateFollowsACollectionChangedElsewhere(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newEnv(t, opts)
		ctx := context.Background()
		e.collection(t, records.NewCollection{Name: "tasks", Fields: []records.Field{
			{Name: "title", Type: records.TypeText, Required: true, Indexed: true}}})
		first := e.create(t, "tasks", map[string]any{"title": "a"}) // this node now knows "tasks"
		other := records.New(e.st, e.ring, e.aud)                   // another node
		if _, err := other.UpdateCollection(ctx, alice, e.org, "tasks", records.CollectionChange{
			AddFields: []records.Field{{Name: "tier", Type: records.TypeText, Indexed: true}}}); err != nil {
			t.Fatal(err)
		}
		withTier := e.create(t, "tasks", map[string]any{"title": "b", "tier": "gold"})
		without := e.create(t, "tasks", map[string]any{"title": "c"})
		now, err := other.Collection(ctx, e.org, "tasks")
		if err != nil {
			t.Fatal(err)
		}
		q, err := records.ParseQuery(now, url.Values{"sort": {"tier"}, "limit": {"10"}})
		if err != nil {
			t.Fatal(err)
		}
		p, err := other.List(ctx, alice, e.org, "tasks", q, false)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range p.Items {
			got = append(got, r.ID)
		}
		// No tier sorts first (in id order), then "gold".
		want := []string{first.ID, without.ID, withTier.ID}
		if !slices.Equal(got, want) {
			t.Fatalf("sorted by tier: %v, want %v (a, c without a tier, then b)", got, want)
		}
	})
}
