// Package observe holds Bulwark's logging, metrics and health state.
//
// Logging: every logger is built by NewLogger, which writes JSON through
// NewRedactingHandler. The redacting handler is the last line of defence
// against personal data and secrets in logs: attributes whose key names a
// secret or personal field ("password", "token", "email", "name", "body",
// "value", ...) are replaced by "[redacted]" at any depth; attributes whose key
// names a client address ("ip", "remote_addr", ...) are replaced by a keyed
// hash (HashIP); and in every string value, error text and the message
// itself, e-mail addresses, JWTs, API keys, bearer credentials, long hex or
// base64 secrets and IP addresses are masked. Callers must still not log raw
// request paths, queries, headers or bodies: redaction catches mistakes, it is
// not a licence to make them.
//
// Metrics: Metrics owns its own Prometheus registry (never the global one), so
// two servers in one test process do not collide.
//
// Health: Health is the readiness flag served by /readyz.
//
// This package must never import capability packages, config or store.
package observe
