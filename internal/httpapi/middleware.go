package httpapi

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/google/uuid"

	"bulwark/internal/edge"
	"bulwark/internal/observe"
)

// requestState is the one per-request allocation of the middleware: the
// response writer that counts status and bytes, the request ID, and when the
// request started. It is stored in the request's context.
type requestState struct {
	http.ResponseWriter
	req     *http.Request
	logger  *slog.Logger
	id      string
	start   time.Time
	status  int
	bytes   int64
	written bool
	// replaced is set when the router's plain-text 404/405 was answered with
	// problem+json instead; the router's own body is then dropped.
	replaced bool
	// authn is the request's authentication, once made (identityAuth).
	authn *authResult
}

type stateKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// RequestID returns the ID of the request ctx belongs to ("" outside a
// request served by this package). Audit events record it.
func RequestID(ctx context.Context) string {
	if st := stateFrom(ctx); st != nil {
		return st.id
	}
	return ""
}

// withRequestState gives every request a fresh 128-bit random ID, sent back as
// X-Request-Id (an ID the client sent is ignored: logs must be able to trust
// it), and the accounting writer the later middleware reads.
func withRequestState(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := &requestState{ResponseWriter: w, logger: logger, id: newRequestID(), start: time.Now()}
			w.Header()["X-Request-Id"] = []string{st.id}
			r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
			st.req = r
			next.ServeHTTP(st, r)
		})
	}
}

// newRequestID returns 16 random bytes in the 8-4-4-4-12 hex layout of a
// UUID: familiar to operators, and with no hex run long enough for the log
// redactor to take it for a secret.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return uuid.UUID(b).String()
}

func (st *requestState) WriteHeader(code int) {
	if st.written {
		return // net/http would only log "superfluous WriteHeader"
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		st.ResponseWriter.WriteHeader(code) // informational: the real status follows
		return
	}
	st.written, st.status = true, code
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && st.req.Pattern == "" &&
		st.ResponseWriter.Header().Get("Content-Type") == "text/plain; charset=utf-8" {
		// No route matched: the router (through http.Error) is about to
		// write plain text.
		st.replaced = true
		st.writeUnmatched(code)
		return
	}
	st.ResponseWriter.WriteHeader(code)
}

func (st *requestState) Write(p []byte) (int, error) {
	if !st.written {
		st.WriteHeader(http.StatusOK)
	}
	if st.replaced {
		return len(p), nil
	}
	n, err := st.ResponseWriter.Write(p)
	st.bytes += int64(n)
	return n, err
}

// Flush sends buffered data to the client (streamed exports use it).
func (st *requestState) Flush() {
	if !st.written {
		st.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(st.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (st *requestState) Unwrap() http.ResponseWriter { return st.ResponseWriter }

// statusOrOK is the status the client got: net/http sends 200 when a handler
// writes nothing.
func (st *requestState) statusOrOK() int {
	if !st.written {
		return http.StatusOK
	}
	return st.status
}

// routeOf is the matched route pattern, bounded in number, safe to log and to
// use as a metric label; never the raw path.
func routeOf(r *http.Request) string {
	if r.Pattern == "" {
		return "unmatched"
	}
	return r.Pattern
}

// methodOf returns r's method when it is a standard one and "OTHER" otherwise,
// so that clients cannot grow the label set.
func methodOf(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return r.Method
	}
	return "OTHER"
}

// recoverPanics turns a panic into a 500 problem (when nothing was sent yet)
// and an error log line with the cause and the stack.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p) // the handler chose to abort the connection
			}
			st := stateFrom(r.Context())
			st.logger.LogAttrs(r.Context(), slog.LevelError, "panic serving request",
				slog.String("request_id", st.id),
				slog.String("route", routeOf(r)),
				slog.String("panic", fmt.Sprint(p)),
				slog.String("stack", string(debug.Stack())))
			if st.written {
				// Part of a response is out: cut the connection rather than let
				// the client take it for a whole one.
				panic(http.ErrAbortHandler)
			}
			writeError(w, r, errPanic)
		}()
		next.ServeHTTP(w, r)
	})
}

// errPanic is what a recovered panic is answered with (an internal error; its
// cause was logged already).
var errPanic = fmt.Errorf("panic (logged)")

// observeRequests counts every request by listener, route pattern, method
// and status.
func observeRequests(m *observe.Metrics, listener string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := stateFrom(r.Context())
			panicked := true
			defer func() {
				status := st.statusOrOK()
				if panicked {
					status = http.StatusInternalServerError // what recoverPanics answers
				}
				m.ObserveRequest(listener, routeOf(r), methodOf(r), status, time.Since(st.start))
			}()
			next.ServeHTTP(w, r)
			panicked = false
		})
	}
}

// logRequests writes one access log line per request: method, route pattern,
// status, duration, bytes, request ID and the client's hashed address. Never
// the path, the query, a header or the body.
func logRequests(logger *slog.Logger, ipKey []byte, listener string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := stateFrom(r.Context())
			panicked := true
			defer func() {
				status := st.statusOrOK()
				if panicked {
					status = http.StatusInternalServerError
				}
				level := slog.LevelInfo
				if status >= 500 {
					level = slog.LevelError
				}
				if !logger.Enabled(r.Context(), level) {
					return
				}
				logger.LogAttrs(r.Context(), level, "request",
					slog.String("listener", listener),
					slog.String("method", methodOf(r)),
					slog.String("route", routeOf(r)),
					slog.Int("status", status),
					slog.Float64("duration_ms", float64(time.Since(st.start).Microseconds())/1000),
					slog.Int64("bytes", st.bytes),
					slog.String("request_id", st.id),
					slog.String("ip", clientHash(r, ipKey)))
			}()
			next.ServeHTTP(w, r)
			panicked = false
		})
	}
}

// clientHash is the pseudonym of r's peer address for logs.
func clientHash(r *http.Request, key []byte) string {
	if a, ok := edge.ClientAddr(r); ok {
		return observe.HashIP(key, a.String())
	}
	return observe.HashIP(key, r.RemoteAddr)
}
