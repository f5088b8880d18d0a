// Package mail sends Bulwark's e-mail: address verification, password
// resets and incident notices to org owners.
//
// A capability package depends on the Sender interface and is given one of
// three implementations:
//   - SMTP submits each message to a relay over its own connection, with TLS
//     that cannot be stripped: "starttls" (the default) fails when the
//     server does not offer STARTTLS rather than continuing in clear,
//     "tls" speaks TLS from the first byte (port 465), and "none" is
//     refused unless the host is a loopback address. Credentials are only
//     ever sent over TLS or to loopback.
//   - Dir writes each message as an .eml file (mode 0600) into a directory,
//     for development without a relay (`make run`): open the file in a mail
//     client, or read the verification or reset link in it.
//   - Log only logs that a message was sent and its subject; the link inside
//     is lost, so use it where nobody needs the message (tests, demos).
//
// Every Sender validates a Message first: a recipient that is not exactly
// one address, or a subject or address holding CR, LF or another control
// character (header injection), is refused with an apperr.Invalid error
// that names the field but not its value.
//
// This package must never log or put into an error an e-mail address, a
// message body or a credential: errors are one line, and SMTP errors are
// scrubbed of the password and the recipient before they are returned.
package mail
