// Package httpapi is Bulwark's HTTP surface: the public and the ops
// listeners' routes (routes.go lists every path), the middleware every request
// passes through, problem+json errors, and JSON decoding and encoding.
//
// httpapi alone maps application errors (internal/apperr) to HTTP statuses.
// Anything that is not an application error is answered as a 500 "internal
// error" with the request ID; its cause goes to the operator's log only.
//
// Invariants: every response carries an X-Request-Id generated here (a client's
// own is ignored) and the security headers; a panic never reaches a client as
// anything but a 500 problem; logs name the route pattern, never the raw path
// or query, and the client's address only as a keyed hash. The middleware is
// on every request's path, so it uses no regular expressions and allocates
// little.
//
// httpapi imports capability packages; none of them may import httpapi.
package httpapi
