package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"bulwark/internal/apperr"
)

// problemBase prefixes every problem type; the rest is the error code.
const problemBase = "https://bulwark.dev/problems/"

// problem is an RFC 9457 problem document.
type problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	RequestID string              `json:"request_id,omitempty"`
	Errors    []apperr.FieldError `json:"errors,omitempty"`
}

// statusOf maps application error codes to HTTP statuses.
var statusOf = map[apperr.Code]int{
	apperr.Invalid:            http.StatusUnprocessableEntity,
	apperr.Unauthorized:       http.StatusUnauthorized,
	apperr.Forbidden:          http.StatusForbidden,
	apperr.NotFound:           http.StatusNotFound,
	apperr.Conflict:           http.StatusConflict,
	apperr.PreconditionFailed: http.StatusPreconditionFailed,
	apperr.RateLimited:        http.StatusTooManyRequests,
	apperr.Unavailable:        http.StatusServiceUnavailable,
	apperr.Internal:           http.StatusInternalServerError,
}

// writeError answers err as a problem: an application error with its status
// and message, a request the server could not read (see decode) with 400, 413
// or 415, and anything else as a 500 "internal error" whose cause is logged
// with the request ID and never shown.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var re *requestError
	if errors.As(err, &re) {
		writeProblem(w, r, re.status, re.kind, re.message, nil)
		return
	}
	code := apperr.CodeOf(err)
	status, ok := statusOf[code]
	if !ok || code == apperr.Internal {
		if err != errPanic {
			if st := stateFrom(r.Context()); st != nil {
				st.logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
					slog.String("request_id", st.id),
					slog.String("route", routeOf(r)),
					slog.Any("err", err))
			}
		}
		writeProblem(w, r, http.StatusInternalServerError, string(apperr.Internal), "internal error", nil)
		return
	}
	if d := apperr.RetryAfterOf(err); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
	writeProblem(w, r, status, string(code), apperr.MessageOf(err), apperr.FieldsOf(err))
}

// writeProblem writes a problem+json response.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, code, detail string, fields []apperr.FieldError) {
	body, _ := json.Marshal(problem{
		Type:      problemBase + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		RequestID: RequestID(r.Context()),
		Errors:    fields,
	})
	h := w.Header()
	h["Content-Type"] = []string{"application/problem+json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
}

// writeUnmatched answers a request no route matched (the router called
// WriteHeader with 404 or 405; for 405 it has set Allow already).
func (st *requestState) writeUnmatched(status int) {
	code, detail := string(apperr.NotFound), "no such resource"
	if status == http.StatusMethodNotAllowed {
		code, detail = "method_not_allowed", "method not allowed on this resource"
	}
	body, _ := json.Marshal(problem{
		Type:      problemBase + code,
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    detail,
		RequestID: st.id,
	})
	h := st.ResponseWriter.Header()
	h["Content-Type"] = []string{"application/problem+json"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	st.ResponseWriter.WriteHeader(status)
	n, _ := st.ResponseWriter.Write(body)
	st.bytes += int64(n)
}
