// Package edge is what stands between the network and Bulwark's handlers:
// the TLS configuration of both listeners (local CA, certificate files, or
// ACME), the security headers every response carries, and IP allowlists.
//
// Invariants: TLS 1.2 is the minimum and TLS 1.2 connections use only ECDHE
// with AEAD suites; private keys are written with mode 0600 in directories of
// mode 0700; nothing here logs a certificate's private key, a client's raw IP
// address or request contents. Middleware here runs on every request, so it
// must stay cheap: no regular expressions, no allocation beyond what net/http
// needs.
//
// edge does not import config: the caller maps its configuration to
// TLSOptions.
package edge
