// Package mailtest runs a real SMTP server on 127.0.0.1 for tests, so that
// the mail client is tested against the protocol rather than a mock.
//
// The server speaks the part of RFC 5321 a submission client needs: EHLO and
// HELO, STARTTLS (RFC 3207) with a self-signed certificate made in-process,
// AUTH PLAIN (RFC 4954, checked against the configured credentials), MAIL
// FROM, RCPT TO, DATA with dot-unstuffing, RSET, NOOP and QUIT. It records
// every accepted message (envelope, raw data, parsed header and body) and
// delivers nothing.
//
// It is strict where a real server is strict, so that tests can show a
// client doing the right thing: AUTH is offered only after TLS unless
// Options.AuthWithoutTLS says otherwise, commands pipelined behind STARTTLS
// are refused (the "STARTTLS command injection" of CVE-2011-0411), and
// lines, messages, recipients and idle time are limited. It is small on
// purpose: no extensions beyond 8BITMIME, SIZE and ENHANCEDSTATUSCODES, no
// relaying, no queue.
//
// It must never be used outside tests: it accepts any recipient and keeps
// every message in memory.
package mailtest
