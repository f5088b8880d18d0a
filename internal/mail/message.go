package mail

import (
	"context"
	"crypto/rand"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"

	"bulwark/internal/apperr"
)

// Message is one plain-text e-mail to one recipient.
type Message struct {
	// To is one address: "ada@example.com" or "Ada <ada@example.com>".
	To string
	// Subject is one line of UTF-8 text, at most 500 bytes.
	Subject string
	// Text is the plain-text body in UTF-8, at most 1 MiB; lines end in
	// "\n" or "\r\n".
	Text string
}

// Sender sends e-mail. Implementations are safe for concurrent use.
type Sender interface {
	// Send sends m. It returns invalid if m is malformed (see Message), and
	// a plain (internal) error if the message could not be handed over.
	Send(ctx context.Context, m Message) error
}

// Limits on a message; generous for what Bulwark sends, small enough that a
// caller's bug cannot make a relay or a disk absorb megabytes.
const (
	maxAddressBytes = 320 // RFC 5321: 64-octet local part, 255-octet domain
	maxSubjectBytes = 500
	maxTextBytes    = 1 << 20
)

// validate checks m and returns its parsed recipient, or an Invalid error
// naming every broken field without repeating its value.
func validate(m Message) (*mail.Address, error) {
	var fields []apperr.FieldError
	to, err := parseAddress(m.To)
	if err != nil {
		fields = append(fields, apperr.FieldError{Field: "to", Code: "invalid", Message: "must be exactly one e-mail address"})
	}
	switch {
	case strings.TrimSpace(m.Subject) == "":
		fields = append(fields, apperr.FieldError{Field: "subject", Code: "required", Message: "must not be empty"})
	case len(m.Subject) > maxSubjectBytes:
		fields = append(fields, apperr.FieldError{Field: "subject", Code: "too_long", Message: "must be at most 500 bytes"})
	case !cleanLine(m.Subject):
		fields = append(fields, apperr.FieldError{Field: "subject", Code: "invalid", Message: "must be one line of text without control characters"})
	}
	switch {
	case len(m.Text) > maxTextBytes:
		fields = append(fields, apperr.FieldError{Field: "text", Code: "too_long", Message: "must be at most 1 MiB"})
	case !utf8.ValidString(m.Text) || strings.ContainsRune(m.Text, 0):
		fields = append(fields, apperr.FieldError{Field: "text", Code: "invalid", Message: "must be UTF-8 text"})
	}
	if len(fields) > 0 {
		return nil, apperr.WithFields("invalid e-mail message", fields...)
	}
	return to, nil
}

// errBadAddress is returned by parseAddress; callers turn it into a field
// error of their own.
var errBadAddress = apperr.Errorf(apperr.Invalid, "invalid e-mail address")

// parseAddress parses exactly one address as net/mail does, and refuses
// anything that could break out of a header: control characters in the
// text as given or in a display name once RFC 2047 words are decoded.
func parseAddress(s string) (*mail.Address, error) {
	if s == "" || len(s) > maxAddressBytes || !cleanLine(s) {
		return nil, errBadAddress
	}
	a, err := mail.ParseAddress(s)
	if err != nil || !cleanLine(a.Name) || !cleanLine(a.Address) {
		return nil, errBadAddress
	}
	local, domain, ok := strings.Cut(a.Address, "@")
	if !ok || local == "" || domain == "" {
		return nil, errBadAddress
	}
	return a, nil
}

// cleanLine reports whether s is valid UTF-8 without control characters
// other than tab: no CR or LF to start a header of its own.
func cleanLine(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f || r == '\u2028' || r == '\u2029' || r >= 0x80 && r < 0xa0 {
			return false
		}
	}
	return true
}

// compose builds the MIME message for m from an already validated
// recipient: quoted-printable UTF-8 text, a Date and a Message-ID under
// the sender's domain, and no header naming the library.
func compose(from, to *mail.Address, m Message, now time.Time) *gomail.Msg {
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	msg.AddToMailAddress(to)
	msg.Subject(m.Subject)
	msg.SetDateWithValue(now)
	msg.SetMessageIDWithValue(rand.Text() + "@" + messageIDDomain(from.Address))
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	return msg
}

// messageIDDomain returns the domain of addr when it is a plain ASCII host
// name, so that Message-IDs do not reveal the sending machine's name.
func messageIDDomain(addr string) string {
	_, domain, _ := strings.Cut(addr, "@")
	if domain == "" || len(domain) > 253 {
		return "bulwark.invalid"
	}
	for i := 0; i < len(domain); i++ {
		c := domain[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "bulwark.invalid"
		}
	}
	return domain
}
