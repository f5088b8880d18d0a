// Package apperr is Bulwark's one application error type.
//
// Capability packages return *Error values with one of a small set of codes;
// only internal/httpapi maps codes to HTTP statuses and problem+json bodies,
// and only cmd/bulwark maps them to exit statuses. Anything that is not an
// *Error is treated as Internal: the client sees "internal error", the
// operator's log sees the cause.
//
// Messages in an *Error are shown to clients: they must never hold secrets,
// personal data, SQL, file paths or library names.
package apperr
