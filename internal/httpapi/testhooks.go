//go:build bulwark_testhooks

package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// addTestRoutes adds routes that end-to-end tests need and production must
// not have: this file is compiled only with -tags bulwark_testhooks.
func addTestRoutes(mux *http.ServeMux) {
	mux.Handle("GET /debug/slow", handleDebugSlow())
}

// handleDebugSlow sends its status and headers at once, then the body after
// ?ms=N milliseconds (at most a minute), so that a test knows the request is
// in flight and can hold it open across a graceful shutdown.
func handleDebugSlow() http.Handler {
	type response struct {
		SleptMS int  `json:"slept_ms"`
		Done    bool `json:"done"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 || ms > 60_000 {
			writeError(w, r, badRequest("ms must be a whole number from 0 to 60000"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		if err := http.NewResponseController(w).Flush(); err != nil {
			return
		}
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		// The status is already sent; a failed write can only be logged by
		// the server, so its error is not checked here.
		_ = json.NewEncoder(w).Encode(response{SleptMS: ms, Done: true})
	})
}
