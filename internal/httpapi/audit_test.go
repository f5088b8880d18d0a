package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/authz"
	"bulwark/internal/keys"
	"bulwark/internal/org"
	"bulwark/internal/store"
	"bulwark/internal/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// headerAuth stands in for accounts and tokens: "Authorization: Test
// ACTOR ROLE ORG-ID" makes the caller ACTOR with ROLE in that org only.
type headerAuth struct{}

func (headerAuth) Authenticate(r *http.Request) (audit.Actor, error) {
	f := strings.Fields(r.Header.Get("Authorization"))
	if len(f) != 4 || f[0] != "Test" {
		return audit.Actor{}, apperr.Errorf(apperr.Unauthorized, "authentication required")
	}
	return audit.Actor{Type: audit.ActorUser, ID: f[1]}, nil
}

func (headerAuth) Authorize(r *http.Request, _ audit.Actor, o org.Org, perm authz.Perm) (authz.Role, error) {
	f := strings.Fields(r.Header.Get("Authorization"))
	if f[3] != o.ID {
		return "", apperr.Errorf(apperr.NotFound, "not a member")
	}
	if !authz.Allowed(authz.Role(f[2]), perm) {
		return authz.Role(f[2]), apperr.Errorf(apperr.Forbidden, "your role does not allow this")
	}
	return authz.Role(f[2]), nil
}

type auditEnv struct {
	srv        *httptest.Server
	svc        *audit.Service
	orgA, orgB org.Org
}

func newAuditEnv(t *testing.T, opts store.Options, auth Authorizer) *auditEnv {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, opts, org.ControlSchema(), org.OrgSchema(), keys.ControlSchema(), audit.ControlSchema(), audit.OrgSchema())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, err := keys.OpenLocalKEK(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewRing(ctx, st, kek, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := audit.New(st, ring, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	orgs := org.NewService(st, nil)
	e := &auditEnv{svc: svc}
	if e.orgA, err = orgs.Create(ctx, "Acme", "acme"); err != nil {
		t.Fatal(err)
	}
	if e.orgB, err = orgs.Create(ctx, "Beta", "beta"); err != nil {
		t.Fatal(err)
	}
	for _, o := range []org.Org{e.orgA, e.orgB} {
		for i := 0; i < 3; i++ {
			ev := audit.Source{Actor: audit.Actor{Type: audit.ActorUser, ID: "u-" + o.Slug}}.Event("record.created",
				audit.Resource{Type: "record", ID: o.Slug + "-rec"}, audit.Success, map[string]string{"marker": o.Slug + "-only"})
			if err := svc.Record(ctx, o.ID, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	d := testDeps(io.Discard)
	d.Orgs, d.Audit, d.Authorizer = orgs, svc, auth
	e.srv = httptest.NewServer(NewServer(d))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *auditEnv) get(t *testing.T, path, auth string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("User-Agent", "audit-test/1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestAuditRoutes_QueryExportVerifyAndEveryReadIsRecorded(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newAuditEnv(t, opts, headerAuth{})
		admin := "Test u-admin admin " + e.orgA.ID

		resp := e.get(t, "/v1/orgs/acme/audit?limit=2", admin)
		var page struct {
			Items []struct {
				Seq     int64
				Action  string
				Actor   audit.Actor
				Details map[string]string
			}
			NextCursor *string `json:"next_cursor"`
		}
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&page) != nil {
			t.Fatalf("list: status %d", resp.StatusCode)
		}
		resp.Body.Close()
		// The read itself is the newest event.
		if len(page.Items) != 2 || page.Items[0].Action != "audit.read" || page.Items[0].Actor.ID != "u-admin" || page.NextCursor == nil {
			t.Fatalf("first page: %+v", page)
		}
		resp = e.get(t, "/v1/orgs/"+e.orgA.ID+"/audit?action=record.created&cursor="+*page.NextCursor, admin)
		page.Items = nil
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&page) != nil {
			t.Fatalf("list by id: status %d", resp.StatusCode)
		}
		resp.Body.Close()
		for _, it := range page.Items {
			if it.Action != "record.created" || it.Details["marker"] != "acme-only" {
				t.Fatalf("filtered page holds %+v", it)
			}
		}

		resp = e.get(t, "/v1/orgs/acme/audit/export?format=jsonl", admin)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		lines := 0
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "beta") {
				t.Fatalf("acme's export holds beta's data: %s", sc.Text())
			}
			lines++
		}
		resp.Body.Close()
		if lines != 3+3 { // 3 records, 2 reads, the export itself
			t.Fatalf("export: %d lines, want 6", lines)
		}
		resp = e.get(t, "/v1/orgs/acme/audit/export?format=csv", admin)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "seq,id,time,") {
			t.Fatalf("csv export: %d %q", resp.StatusCode, body)
		}

		resp = e.get(t, "/v1/orgs/acme/audit/verify", admin)
		var rep audit.Report
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&rep) != nil || !rep.OK || rep.EventsChecked != 8 {
			t.Fatalf("verify: %d %+v", resp.StatusCode, rep)
		}
		resp.Body.Close()

		// Bad filters are 422 naming the field; nothing is read.
		for path, field := range map[string]string{
			"/v1/orgs/acme/audit?limit=500":             "limit",
			"/v1/orgs/acme/audit?limit=x":               "limit",
			"/v1/orgs/acme/audit?since=yesterday":       "since",
			"/v1/orgs/acme/audit?cursor=AAAA":           "cursor",
			"/v1/orgs/acme/audit?outcome=maybe":         "outcome",
			"/v1/orgs/acme/audit/export?format=pdf":     "format",
			"/v1/orgs/acme/audit?action=" + "Bad%20A.*": "action",
		} {
			p := readProblem(t, e.get(t, path, admin), 422)
			if len(p.Errors) == 0 || p.Errors[0].Field != field {
				t.Errorf("%s: %+v, want the field %s named", path, p, field)
			}
		}
	})
}

func TestAuditRoutes_OtherOrgsAreNotFoundAndMembersForbidden(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		ctx := context.Background()
		e := newAuditEnv(t, opts, headerAuth{})
		adminA := "Test u-admin admin " + e.orgA.ID
		var bodies []string
		for _, path := range []string{
			"/v1/orgs/beta/audit", "/v1/orgs/" + e.orgB.ID + "/audit", "/v1/orgs/beta/audit/export",
			"/v1/orgs/beta/audit/verify", "/v1/orgs/nosuch/audit", "/v1/orgs/0190f5a0-0000-7000-8000-00000000000b/audit",
		} {
			p := readProblem(t, e.get(t, path, adminA), 404)
			bodies = append(bodies, p.Detail+"|"+p.Title)
		}
		for _, b := range bodies[1:] {
			if b != bodies[0] {
				t.Fatalf("404 bodies differ: %q vs %q", b, bodies[0])
			}
		}
		// A member who is not owner or admin: 403, and the denial is in
		// the org's log.
		readProblem(t, e.get(t, "/v1/orgs/acme/audit", "Test u-mem member "+e.orgA.ID), 403)
		page, err := e.svc.Query(ctx, e.orgA.ID, audit.Filter{Outcome: audit.Denied}, 0, "")
		if err != nil || len(page.Items) != 1 || page.Items[0].Actor.ID != "u-mem" || page.Items[0].UserAgent != "audit-test/1" {
			t.Fatalf("denial in the log: %+v, %v", page.Items, err)
		}
		// Nothing was read from or written to beta's log by acme's admin.
		page, _ = e.svc.Query(ctx, e.orgB.ID, audit.Filter{}, 100, "")
		if len(page.Items) != 3 {
			t.Fatalf("beta's log has %d events, want its 3", len(page.Items))
		}
		// No credentials: 401 before anything about orgs is looked at.
		readProblem(t, e.get(t, "/v1/orgs/acme/audit", ""), 401)
		readProblem(t, e.get(t, "/v1/orgs/nosuch/audit", ""), 401)
	})
}

func TestAuditRoutes_WithoutAnAuthorizerNobodyGetsIn(t *testing.T) {
	storetest.Each(t, func(t *testing.T, opts store.Options) {
		e := newAuditEnv(t, opts, nil)
		readProblem(t, e.get(t, "/v1/orgs/acme/audit", "Test u-admin admin "+e.orgA.ID), 401)
		readProblem(t, e.get(t, "/v1/orgs/acme/audit/export", "Bearer x"), 401)
	})
}
