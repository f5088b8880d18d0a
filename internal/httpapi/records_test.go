package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

// raw sends a request with a raw body and headers and returns the status,
// the headers and the body.
func (e *authEnv) raw(t *testing.T, method, path, auth, body string, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	base := e.srv.URL
	if strings.HasPrefix(path, "/ops/") {
		base = e.ops.URL
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

const peopleCollection = `{"name":"people","fields":[
	{"name":"name","type":"text","required":true,"indexed":true},
	{"name":"age","type":"number","indexed":true},
	{"name":"ssn","type":"text","indexed":true,"sensitive":true},
	{"name":"notes","type":"text"}]}`

// Records over HTTP: a member writes and reads in clear (each clear read
// of a sensitive field audited), a viewer sees sensitive fields masked
// and cannot write, If-Match guards changes (412), bad input is 422
// naming the field, and a deleted record is 404.
func TestRecordRoutes_CRUDMaskingAndIfMatch(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		if st, body := e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Acme", "slug": "acme"}); st != 201 {
			t.Fatalf("create org: %d %v", st, body)
		}
		acme, _ := e.orgs.Get(ctx, "acme")
		op := audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "cli"}}
		member, _, err := e.ids.CreateAPIKey(ctx, op, acme.ID, "member", string(authz.Member), nil)
		if err != nil {
			t.Fatal(err)
		}
		viewer, _, err := e.ids.CreateAPIKey(ctx, op, acme.ID, "viewer", string(authz.Viewer), nil)
		if err != nil {
			t.Fatal(err)
		}
		if st, _, b := e.raw(t, "POST", "/v1/orgs/acme/collections", member, peopleCollection, nil); st != 403 {
			t.Fatalf("member made a collection: %d %s", st, b)
		}
		if st, _, b := e.raw(t, "POST", "/v1/orgs/acme/collections", amy, peopleCollection, nil); st != 201 {
			t.Fatalf("collection: %d %s", st, b)
		}
		st, hdr, b := e.raw(t, "POST", "/v1/orgs/acme/collections/people/records", member, `{"name":"Ann","age":41,"ssn":"111-22-3333","notes":"n"}`, nil)
		if st != 201 || hdr.Get("ETag") != `"1"` {
			t.Fatalf("create: %d %s %q", st, b, hdr.Get("ETag"))
		}
		var rec map[string]any
		json.Unmarshal(b, &rec)
		id := rec["id"].(string)
		path := "/v1/orgs/acme/collections/people/records/" + id
		for _, tc := range []struct{ body, field, code string }{
			{`{"name":"B","colour":"red"}`, "colour", "unknown"},
			{`{"name":"B","age":"forty"}`, "age", "wrong_type"},
			{`{"age":3}`, "name", "required"},
		} {
			st, _, b := e.raw(t, "POST", "/v1/orgs/acme/collections/people/records", member, tc.body, nil)
			var p struct {
				Errors []struct{ Field, Code string }
			}
			json.Unmarshal(b, &p)
			if st != 422 || len(p.Errors) != 1 || p.Errors[0].Field != tc.field || p.Errors[0].Code != tc.code {
				t.Fatalf("%s: %d %s", tc.body, st, b)
			}
		}
		if st, _, b := e.raw(t, "POST", "/v1/orgs/acme/collections/people/records", viewer, `{"name":"V"}`, nil); st != 403 {
			t.Fatalf("viewer wrote: %d %s", st, b)
		}
		st, _, b = e.raw(t, "GET", path, viewer, "", nil)
		if st != 200 || bytes.Contains(b, []byte("111-22")) || !bytes.Contains(b, []byte(`"masked":["ssn"]`)) {
			t.Fatalf("viewer read: %d %s", st, b)
		}
		st, hdr, b = e.raw(t, "GET", path, member, "", nil)
		if st != 200 || !bytes.Contains(b, []byte(`"ssn":"111-22-3333"`)) || hdr.Get("ETag") != `"1"` {
			t.Fatalf("member read: %d %s", st, b)
		}
		page, err := e.audit.Query(ctx, acme.ID, audit.Filter{Action: "record.sensitive_read"}, 10, "")
		if err != nil || len(page.Items) != 1 || page.Items[0].Actor.Type != audit.ActorAPIKey || page.Items[0].Resource.ID != id {
			t.Fatalf("sensitive reads audited: %+v %v", page.Items, err)
		}
		// If-Match: stale → 412, not ours → 412, right → 200 with the next
		// ETag, and the answer does not show the sensitive value it did not set.
		for _, tag := range []string{`"7"`, `"abc"`} {
			if st, _, b := e.raw(t, "PATCH", path, member, `{"age":42}`, map[string]string{"If-Match": tag}); st != 412 {
				t.Fatalf("If-Match %s: %d %s", tag, st, b)
			}
		}
		st, hdr, b = e.raw(t, "PATCH", path, member, `{"age":42}`, map[string]string{"If-Match": `"1"`})
		if st != 200 || hdr.Get("ETag") != `"2"` || !bytes.Contains(b, []byte(`"age":42`)) || bytes.Contains(b, []byte("111-22")) {
			t.Fatalf("patch: %d %s %q", st, b, hdr.Get("ETag"))
		}
		st, _, b = e.raw(t, "GET", "/v1/orgs/acme/collections/people/records?where.age=42&sort=-name", viewer, "", nil)
		if st != 200 || !bytes.Contains(b, []byte(id)) || !bytes.Contains(b, []byte(`"next_cursor":null`)) {
			t.Fatalf("list: %d %s", st, b)
		}
		if st, _, b := e.raw(t, "GET", "/v1/orgs/acme/collections/people/records?where.notes=n", viewer, "", nil); st != 422 || !bytes.Contains(b, []byte("not_indexed")) {
			t.Fatalf("filter on a field that is not indexed: %d %s", st, b)
		}
		// Injection through a filter value or a field name finds nothing and
		// breaks nothing: values are parameters, names are checked.
		for _, q := range []string{"where.name=" + url.QueryEscape("Ann' OR '1'='1"), "where.name=" + url.QueryEscape("x\"); DROP TABLE records; --")} {
			st, _, b := e.raw(t, "GET", "/v1/orgs/acme/collections/people/records?"+q, viewer, "", nil)
			if st != 200 || !bytes.Contains(b, []byte(`"items":[]`)) {
				t.Fatalf("%s: %d %s", q, st, b)
			}
		}
		if st, _, b := e.raw(t, "GET", "/v1/orgs/acme/collections/people/records?"+url.QueryEscape("where.name) OR (1")+"=1", viewer, "", nil); st != 422 {
			t.Fatalf("a field name with SQL in it: %d %s", st, b)
		}
		// A body over 1 MiB is refused whole.
		if st, _, b := e.raw(t, "POST", "/v1/orgs/acme/collections/people/records", member, `{"name":"`+strings.Repeat("x", 2<<20)+`"}`, nil); st != 413 {
			t.Fatalf("a 2 MiB body: %d %.200s", st, b)
		}
		if st, _, b := e.raw(t, "GET", path, viewer, "", nil); st != 200 || !bytes.Contains(b, []byte(`"age":42`)) {
			t.Fatalf("the record after the attempts: %d %s", st, b)
		}
		if st, _, b := e.raw(t, "DELETE", path, member, "", map[string]string{"If-Match": `"1"`}); st != 412 {
			t.Fatalf("stale delete: %d %s", st, b)
		}
		if st, _, b := e.raw(t, "DELETE", path, member, "", map[string]string{"If-Match": `"2"`}); st != 204 {
			t.Fatalf("delete: %d %s", st, b)
		}
		if st, _, _ := e.raw(t, "GET", path, member, "", nil); st != 404 {
			t.Fatalf("deleted record: %d", st)
		}
		for _, a := range []string{"record.created", "record.updated", "record.deleted", "collection.created"} {
			p, err := e.audit.Query(ctx, acme.ID, audit.Filter{Action: a}, 10, "")
			if err != nil || len(p.Items) != 1 {
				t.Fatalf("%s: %+v %v", a, p.Items, err)
			}
		}
	})
}

// Isolation: a user and an API key of org A, in their own org's paths,
// cannot reach org B's records by guessing or knowing their ids (404,
// the same body as a made-up id), and nothing of B appears in A's lists,
// audit log or its export. (That every org route of B answers 404 by id
// and slug to them is TestOrgRoutes_EveryRouteAsksTheDecision.)
func TestIsolation_NothingOfAnotherOrgReachesTheCaller(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		bea, _ := e.user(t, "bea@example.com")
		e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Acme", "slug": "acme"})
		e.do(t, "POST", "/v1/orgs", bea, map[string]string{"name": "Beta", "slug": "beta"})
		acme, _ := e.orgs.Get(ctx, "acme")
		key, _, err := e.ids.CreateAPIKey(ctx, audit.Source{Actor: audit.Actor{Type: audit.ActorOperator, ID: "cli"}}, acme.ID, "k", "owner", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, who := range []string{amy, bea} {
			slug := map[string]string{amy: "acme", bea: "beta"}[who]
			if st, _, b := e.raw(t, "POST", "/v1/orgs/"+slug+"/collections", who, peopleCollection, nil); st != 201 {
				t.Fatalf("collection: %d %s", st, b)
			}
		}
		var betaIDs []string
		for i := range 5 {
			_, _, b := e.raw(t, "POST", "/v1/orgs/beta/collections/people/records", bea, `{"name":"BETAMARKER","ssn":"BETASSN","notes":"BETANOTE`+string(rune('0'+i))+`"}`, nil)
			var rec map[string]any
			json.Unmarshal(b, &rec)
			betaIDs = append(betaIDs, rec["id"].(string))
		}
		_, _, b := e.raw(t, "POST", "/v1/orgs/acme/collections/people/records", amy, `{"name":"ACMEMARKER"}`, nil)
		var mine map[string]any
		json.Unmarshal(b, &mine)
		for _, who := range []string{amy, key} {
			_, _, made := e.raw(t, "GET", "/v1/orgs/acme/collections/people/records/0190f5a0-0000-7000-8000-0000000000aa", who, "", nil)
			want := string(problemShape(t, made))
			for _, id := range betaIDs {
				for _, m := range []string{"GET", "PATCH", "DELETE"} {
					body := ""
					if m == "PATCH" {
						body = `{"name":"x"}`
					}
					st, _, got := e.raw(t, m, "/v1/orgs/acme/collections/people/records/"+id, who, body, nil)
					if st != 404 || string(problemShape(t, got)) != want {
						t.Fatalf("%s B's record %s in A: %d %s, want 404 like %s", m, id, st, got, want)
					}
				}
			}
			for _, path := range []string{"/v1/orgs/acme/collections/people/records?limit=100", "/v1/orgs/acme/collections",
				"/v1/orgs/acme/audit?limit=100", "/v1/orgs/acme/audit/export?format=jsonl", "/v1/orgs/acme/audit/export?format=csv",
				"/v1/orgs/acme/members", "/v1/orgs"} {
				if path == "/v1/orgs" && who == key {
					continue // an API key is not a user: it has no list of orgs
				}
				st, _, got := e.raw(t, "GET", path, who, "", nil)
				if st != 200 {
					t.Fatalf("%s: %d %s", path, st, got)
				}
				for _, leak := range append([]string{"BETA", "Beta", "beta"}, betaIDs...) {
					if bytes.Contains(got, []byte(leak)) {
						t.Fatalf("%s shows %q of org B: %s", path, leak, got)
					}
				}
			}
		}
		// B's own view is whole: it sees its five records and not A's.
		st, _, got := e.raw(t, "GET", "/v1/orgs/beta/collections/people/records?limit=100", bea, "", nil)
		if st != 200 || bytes.Count(got, []byte(`"id"`)) != 5 || bytes.Contains(got, []byte("ACMEMARKER")) {
			t.Fatalf("B's list: %d %s", st, got)
		}
	})
}

// problemShape is a problem body without its request id, which differs
// per request.
func problemShape(t *testing.T, b []byte) []byte {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("not a problem: %s", b)
	}
	delete(p, "request_id")
	out, _ := json.Marshal(p)
	return out
}

// An operator reads an org's records only under a live grant: with a
// read grant they read (sensitive fields in clear, the read in the org's
// log with the operator as actor) and cannot write; with a write grant
// they write; after the grant is revoked the org is gone for them again.
func TestSupportAccess_RecordsUnderAGrant(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuthEnv(t, opts)
		amy, _ := e.user(t, "amy@example.com")
		e.do(t, "POST", "/v1/orgs", amy, map[string]string{"name": "Acme", "slug": "acme"})
		acme, _ := e.orgs.Get(ctx, "acme")
		e.raw(t, "POST", "/v1/orgs/acme/collections", amy, peopleCollection, nil)
		_, _, b := e.raw(t, "POST", "/v1/orgs/acme/collections/people/records", amy, `{"name":"Ann","ssn":"111-22-3333"}`, nil)
		var rec map[string]any
		json.Unmarshal(b, &rec)
		path := "/ops/v1/orgs/acme/collections/people/records/" + rec["id"].(string)
		olga := e.operator(t, "olga@ops.example.com")
		if st, _, _ := e.raw(t, "GET", path, olga, "", nil); st != 404 {
			t.Fatalf("without a grant: %d, want 404", st)
		}
		grant := func(write bool) string {
			st, g := e.do(t, "POST", "/ops/v1/access-requests", olga, map[string]any{"org": "acme", "reason": "ticket 99: wrong totals", "duration_minutes": 60, "write": write})
			if st != 201 {
				t.Fatalf("request: %d %v", st, g)
			}
			id := g["id"].(string)
			if st, ap := e.do(t, "POST", "/v1/orgs/acme/access-requests/"+id+"/approve", amy, nil); st != 200 {
				t.Fatalf("approve: %d %v", st, ap)
			}
			return id
		}
		read := grant(false)
		st, _, got := e.raw(t, "GET", path, olga, "", nil)
		if st != 200 || !bytes.Contains(got, []byte("111-22-3333")) {
			t.Fatalf("read under a grant: %d %s", st, got)
		}
		if st, _, got := e.raw(t, "POST", "/ops/v1/orgs/acme/collections/people/records", olga, `{"name":"Op"}`, nil); st != 403 {
			t.Fatalf("write under a read grant: %d %s", st, got)
		}
		reads, err := e.audit.Query(ctx, acme.ID, audit.Filter{Action: "record.sensitive_read", Actor: "operator:" + opsID(t, e, olga)}, 10, "")
		if err != nil || len(reads.Items) != 1 {
			t.Fatalf("the operator's clear read in the org's log: %+v %v", reads.Items, err)
		}
		if st, _ := e.do(t, "POST", "/v1/orgs/acme/access-grants/"+read+"/revoke", amy, nil); st != 200 {
			t.Fatalf("revoke: %d", st)
		}
		if st, _, _ := e.raw(t, "GET", path, olga, "", nil); st != 404 {
			t.Fatalf("after revocation: %d, want 404", st)
		}
		grant(true)
		if st, _, got := e.raw(t, "POST", "/ops/v1/orgs/acme/collections/people/records", olga, `{"name":"Op"}`, nil); st != 201 {
			t.Fatalf("write under a write grant: %d %s", st, got)
		}
		created, err := e.audit.Query(ctx, acme.ID, audit.Filter{Action: "record.created", Actor: "operator:" + opsID(t, e, olga)}, 10, "")
		if err != nil || len(created.Items) != 1 {
			t.Fatalf("the operator's write in the org's log: %+v %v", created.Items, err)
		}
	})
}
