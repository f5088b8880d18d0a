package httpapi

import (
	"log/slog"
	"net/http"

	"bulwark/internal/apperr"
	"bulwark/internal/observe"
)

// handleHealthz answers 200 while the process is alive.
func handleHealthz() http.Handler {
	type response struct {
		Status string `json:"status"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := encode(w, r, http.StatusOK, response{Status: "ok"}); err != nil {
			writeError(w, r, err)
		}
	})
}

// handleReadyz answers 200 when the process takes traffic, 503 otherwise
// (starting, or draining before shutdown).
func handleReadyz(h *observe.Health) http.Handler {
	type response struct {
		Status string `json:"status"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !h.Ready() {
			writeError(w, r, apperr.Errorf(apperr.Unavailable, "not ready"))
			return
		}
		if err := encode(w, r, http.StatusOK, response{Status: "ready"}); err != nil {
			writeError(w, r, err)
		}
	})
}

// handleOpsDenied answers a client outside the ops allowlist.
func handleOpsDenied(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.Logger.LogAttrs(r.Context(), slog.LevelWarn, "ops listener: client not in ops_allowlist",
			slog.String("request_id", RequestID(r.Context())),
			slog.String("ip", clientHash(r, d.IPKey)))
		writeError(w, r, apperr.Errorf(apperr.Forbidden, "this address may not use the operator listener"))
	})
}
