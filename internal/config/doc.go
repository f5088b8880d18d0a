// Package config builds Bulwark's configuration: the Config type, its
// secure defaults, loading from a YAML file, BULWARK_* environment variables
// and command-line flags, validation, and printing the effective settings.
//
// Precedence, lowest first: Default, the file (--config, else BULWARK_CONFIG,
// else ./bulwark.yaml when it exists), environment variables (BULWARK_ and the
// key upper-cased with dots as underscores, e.g. BULWARK_TLS_MODE), flags.
//
// Every key is one row of a single settings table that the file, environment
// and flag readers, Validate, WriteEffective and Keys share; adding a key
// means adding a row and a field, nothing else.
//
// Invariants:
//   - Default is secure and valid: loopback listeners, TLS, HSTS, a loopback
//     ops allowlist. An insecure setting (plain HTTP beyond loopback, an open
//     ops allowlist, unencrypted database traffic to another host) is refused
//     unless its allow_insecure_* key is true.
//   - Load returns a Config only if it passes Validate.
//   - Every error is one line starting with "config: " that names the key,
//     where its value came from (file and line, environment variable or flag)
//     and what is allowed.
//   - Secret values (database.url) never appear in errors, and appear only
//     masked in WriteEffective and Keys.
//
// The package must never read the process environment itself (Load is given
// getenv), hold global state, or touch files other than the configuration
// file; Validate does no I/O at all.
package config
