package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"bulwark/internal/apperr"
	"bulwark/internal/audit"
	"bulwark/internal/org"
)

// auditFilter reads the filters of the query string.
func auditFilter(r *http.Request) (audit.Filter, error) {
	q := r.URL.Query()
	f := audit.Filter{Actor: q.Get("actor"), Action: q.Get("action"), Resource: q.Get("resource"), Outcome: q.Get("outcome")}
	for _, t := range []struct {
		name string
		into *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(t.name); v != "" {
			at, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, apperr.WithFields(t.name+" must be an RFC 3339 time", apperr.FieldError{Field: t.name, Code: "invalid"})
			}
			*t.into = at
		}
	}
	for _, v := range []string{f.Actor, f.Action, f.Resource} {
		if len(v) > 200 {
			return f, apperr.WithFields("filter too long", apperr.FieldError{Field: "filter", Code: "too_long"})
		}
	}
	return f, nil
}

// filterDetails are the filters of a read, for its audit event.
func filterDetails(r *http.Request) map[string]string {
	d := map[string]string{}
	for _, k := range []string{"actor", "action", "resource", "outcome", "since", "until", "format"} {
		if v := r.URL.Query().Get(k); v != "" {
			d["filter_"+k] = v
		}
	}
	return d
}

// auditList is GET /v1/orgs/{org}/audit.
func (d Deps) auditList(w http.ResponseWriter, r *http.Request, a access) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
			return apperr.WithFields("limit must be 1 to 100", apperr.FieldError{Field: "limit", Code: "out_of_range"})
		}
	}
	ctx := r.Context()
	if err := d.recordRead(ctx, a.Org, a.Src, "audit.read", r); err != nil {
		return err
	}
	page, err := d.Audit.Query(ctx, a.Org.ID, f, limit, r.URL.Query().Get("cursor"))
	if err != nil {
		return err
	}
	return encode(w, r, http.StatusOK, page)
}

// recordRead records a read of the org's audit log before it happens.
func (d Deps) recordRead(ctx context.Context, o org.Org, src audit.Source, action string, r *http.Request) error {
	return d.Audit.Record(ctx, o.ID, src.Event(action, audit.Resource{Type: "audit_log", ID: o.ID}, audit.Success, filterDetails(r)))
}

// auditExport is GET /v1/orgs/{org}/audit/export?format=jsonl|csv: every
// matching event, oldest first, streamed.
func (d Deps) auditExport(w http.ResponseWriter, r *http.Request, a access) error {
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = audit.JSONL
	}
	if format != audit.JSONL && format != audit.CSV {
		return apperr.WithFields("format must be jsonl or csv", apperr.FieldError{Field: "format", Code: "invalid"})
	}
	ctx := r.Context()
	if err := d.recordRead(ctx, a.Org, a.Src, "audit.exported", r); err != nil {
		return err
	}
	ctype, ext := "application/x-ndjson", "jsonl"
	if format == audit.CSV {
		ctype, ext = "text/csv; charset=utf-8", "csv"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="audit-`+a.Org.Slug+`.`+ext+`"`)
	w.Header().Set("Cache-Control", "no-store")
	// Once the first byte is out an error can only cut the stream short;
	// it is logged, and the missing end of the CSV or JSON lines shows it
	// to the client.
	if _, err := d.Audit.Export(ctx, a.Org.ID, f, format, w); err != nil {
		d.Logger.Error("audit: export cut short", "org_id", a.Org.ID, "error", err.Error())
	}
	return nil
}

// auditVerify is GET /v1/orgs/{org}/audit/verify.
func (d Deps) auditVerify(w http.ResponseWriter, r *http.Request, a access) error {
	ctx := r.Context()
	if err := d.recordRead(ctx, a.Org, a.Src, "audit.verified", r); err != nil {
		return err
	}
	rep, err := d.Audit.Verify(ctx, a.Org.ID)
	if err != nil {
		return err
	}
	return encode(w, r, http.StatusOK, rep)
}
