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

// auditAccess resolves and authorizes an audit route, recording a denial
// in the org's log. Reads that are allowed are recorded by the handler,
// before it reads.
func (d Deps) auditAccess(w http.ResponseWriter, r *http.Request, action string) (org.Org, audit.Source, bool) {
	o, src, err := d.orgFor(r, PermAuditRead)
	if apperr.CodeOf(err) == apperr.Forbidden && o.ID != "" {
		denied := src.Event(action, audit.Resource{Type: "audit_log", ID: o.ID}, audit.Denied, nil)
		if rerr := d.Audit.Record(r.Context(), o.ID, denied); rerr != nil {
			d.Logger.Error("audit: denial not recorded", "org_id", o.ID, "error", rerr.Error())
		}
	}
	if err != nil {
		writeError(w, r, err)
		return org.Org{}, audit.Source{}, false
	}
	return o, src, true
}

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

// handleAuditList is GET /v1/orgs/{org}/audit.
func handleAuditList(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, src, ok := d.auditAccess(w, r, "audit.read")
		if !ok {
			return
		}
		f, err := auditFilter(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		limit := 0
		if v := r.URL.Query().Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
				writeError(w, r, apperr.WithFields("limit must be 1 to 100", apperr.FieldError{Field: "limit", Code: "out_of_range"}))
				return
			}
		}
		ctx := r.Context()
		if err := d.recordRead(ctx, o, src, "audit.read", r); err != nil {
			writeError(w, r, err)
			return
		}
		page, err := d.Audit.Query(ctx, o.ID, f, limit, r.URL.Query().Get("cursor"))
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := encode(w, r, http.StatusOK, page); err != nil {
			d.Logger.Error("audit: write response", "error", err.Error())
		}
	})
}

// recordRead records a read of the org's audit log before it happens.
func (d Deps) recordRead(ctx context.Context, o org.Org, src audit.Source, action string, r *http.Request) error {
	return d.Audit.Record(ctx, o.ID, src.Event(action, audit.Resource{Type: "audit_log", ID: o.ID}, audit.Success, filterDetails(r)))
}

// handleAuditExport is GET /v1/orgs/{org}/audit/export?format=jsonl|csv:
// every matching event, oldest first, streamed.
func handleAuditExport(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, src, ok := d.auditAccess(w, r, "audit.exported")
		if !ok {
			return
		}
		f, err := auditFilter(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		format := r.URL.Query().Get("format")
		if format == "" {
			format = audit.JSONL
		}
		if format != audit.JSONL && format != audit.CSV {
			writeError(w, r, apperr.WithFields("format must be jsonl or csv", apperr.FieldError{Field: "format", Code: "invalid"}))
			return
		}
		ctx := r.Context()
		if err := d.recordRead(ctx, o, src, "audit.exported", r); err != nil {
			writeError(w, r, err)
			return
		}
		ctype, ext := "application/x-ndjson", "jsonl"
		if format == audit.CSV {
			ctype, ext = "text/csv; charset=utf-8", "csv"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", `attachment; filename="audit-`+o.Slug+`.`+ext+`"`)
		w.Header().Set("Cache-Control", "no-store")
		// Once the first byte is out an error can only cut the stream
		// short; it is logged, and the missing end of the CSV or JSON lines
		// shows it to the client.
		if _, err := d.Audit.Export(ctx, o.ID, f, format, w); err != nil {
			d.Logger.Error("audit: export cut short", "org_id", o.ID, "error", err.Error())
		}
	})
}

// handleAuditVerify is GET /v1/orgs/{org}/audit/verify.
func handleAuditVerify(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, src, ok := d.auditAccess(w, r, "audit.verified")
		if !ok {
			return
		}
		ctx := r.Context()
		if err := d.recordRead(ctx, o, src, "audit.verified", r); err != nil {
			writeError(w, r, err)
			return
		}
		rep, err := d.Audit.Verify(ctx, o.ID)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := encode(w, r, http.StatusOK, rep); err != nil {
			d.Logger.Error("audit: write response", "error", err.Error())
		}
	})
}
