package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"bulwark/internal/apperr"
)

func TestWriteError_MapsCodesToStatuses(t *testing.T) {
	cases := []struct {
		err        error
		status     int
		wantType   string
		wantDetail string
	}{
		{apperr.WithFields("bad org", apperr.FieldError{Field: "slug", Code: "too_short"}), 422, "invalid", "bad org"},
		{apperr.Errorf(apperr.Unauthorized, "sign in"), 401, "unauthorized", "sign in"},
		{apperr.Errorf(apperr.Forbidden, "org is suspended"), 403, "forbidden", "org is suspended"},
		{fmt.Errorf("get: %w", apperr.Errorf(apperr.NotFound, "no such org")), 404, "not_found", "no such org"},
		{apperr.Errorf(apperr.Conflict, "slug taken"), 409, "conflict", "slug taken"},
		{apperr.Errorf(apperr.RateLimited, "slow down"), 429, "rate_limited", "slow down"},
		{apperr.Errorf(apperr.Unavailable, "not ready"), 503, "unavailable", "not ready"},
		{apperr.Errorf(apperr.Internal, "pq: relation orgs does not exist"), 500, "internal", "internal error"},
		{errors.New("open /data/orgs/x.db: permission denied"), 500, "internal", "internal error"},
		{&apperr.Error{Code: "teapot", Message: "odd"}, 500, "internal", "internal error"},
	}
	for _, c := range cases {
		t.Run(c.err.Error(), func(t *testing.T) {
			handler := testDeps(io.Discard).withDefaults().stack(listenerPublic, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				writeError(w, r, c.err)
			}))
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
			p := readProblem(t, rec.Result(), c.status)
			if p.Type != problemBase+c.wantType || p.Detail != c.wantDetail {
				t.Fatalf("problem %+v", p)
			}
			if c.status == 422 && (len(p.Errors) != 1 || p.Errors[0].Field != "slug" || p.Errors[0].Code != "too_short") {
				t.Fatalf("errors %+v", p.Errors)
			}
		})
	}
}

func TestDecode_RejectsWhatItCannotRead(t *testing.T) {
	cases := []struct {
		name        string
		contentType string
		body        string
		status      int
		wantDetail  string
		wantFields  []string
	}{
		{"valid", "application/json", `{"email":"a@b.c","password":"long-enough-pw","name":"A","slug":"acme"}`, 201, "", nil},
		{"charset param accepted", "application/json; charset=utf-8", `{"slug":"acme","password":"long-enough-pw"}`, 201, "", nil},
		{"wrong media type", "text/plain", `{"slug":"acme"}`, 415, "JSON", nil},
		{"no media type", "", `{"slug":"acme"}`, 415, "JSON", nil},
		{"not JSON", "application/json", `{"slug":`, 400, "not valid JSON", nil},
		{"garbage", "application/json", `slug=acme`, 400, "not valid JSON", nil},
		{"empty", "application/json", ``, 400, "empty", nil},
		{"unknown field", "application/json", `{"slug":"acme","admin":true}`, 400, `unknown field "admin"`, nil},
		{"wrong type", "application/json", `{"slug":42}`, 400, `"slug" has the wrong type`, nil},
		{"two values", "application/json", `{"slug":"a"}{"slug":"b"}`, 400, "one JSON value", nil},
		{"too large", "application/json", `{"slug":"` + strings.Repeat("a", maxBodyBytes) + `"}`, 413, "larger than", nil},
		{"invalid fields", "application/json", `{"password":"short"}`, 422, "invalid fields", []string{"password:too_short", "slug:required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := testPublic(testDeps(io.Discard))
			r := httptest.NewRequest("POST", "/test/signup", strings.NewReader(c.body))
			if c.contentType != "" {
				r.Header.Set("Content-Type", c.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if c.status == 201 {
				if rec.Code != 201 || !strings.Contains(rec.Body.String(), `"slug":"acme"`) {
					t.Fatalf("status %d body %s", rec.Code, rec.Body)
				}
				return
			}
			p := readProblem(t, rec.Result(), c.status)
			if !strings.Contains(p.Detail, c.wantDetail) {
				t.Errorf("detail %q, want it to mention %q", p.Detail, c.wantDetail)
			}
			var got []string
			for _, f := range p.Errors {
				got = append(got, f.Field+":"+f.Code)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.wantFields) {
				t.Errorf("errors %v, want %v", got, c.wantFields)
			}
		})
	}
}

func TestEncode_UnencodableValueIsInternalErrorNotHalfResponse(t *testing.T) {
	handler := testDeps(io.Discard).withDefaults().stack(listenerPublic, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := encode(w, r, http.StatusOK, map[string]any{"f": func() {}}); err != nil {
			writeError(w, r, err)
		}
	}))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	readProblem(t, rec.Result(), http.StatusInternalServerError)
}
