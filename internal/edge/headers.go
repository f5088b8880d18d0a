package edge

import (
	"net/http"
	"strconv"
	"time"
)

// SecurityHeaders sets, on every response, the headers that make a browser
// treat it safely: HSTS (when hstsMaxAge > 0, with includeSubDomains),
// X-Content-Type-Options nosniff, X-Frame-Options DENY, Referrer-Policy
// no-referrer, a Content-Security-Policy that allows nothing
// (default-src 'none'; frame-ancestors 'none') and Cache-Control no-store.
// A handler that serves HTML or cacheable content overrides the last two
// itself.
func SecurityHeaders(hstsMaxAge time.Duration) func(http.Handler) http.Handler {
	// The values are built once; each response gets its own slice (net/http may
	// append to a header's slice).
	var hsts string
	if secs := int64(hstsMaxAge / time.Second); secs > 0 {
		hsts = "max-age=" + strconv.FormatInt(secs, 10) + "; includeSubDomains"
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			if hsts != "" {
				h["Strict-Transport-Security"] = []string{hsts}
			}
			h["X-Content-Type-Options"] = []string{"nosniff"}
			h["X-Frame-Options"] = []string{"DENY"}
			h["Referrer-Policy"] = []string{"no-referrer"}
			h["Content-Security-Policy"] = []string{"default-src 'none'; frame-ancestors 'none'"}
			h["Cache-Control"] = []string{"no-store"}
			next.ServeHTTP(w, r)
		})
	}
}
