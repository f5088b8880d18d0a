package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// The RFC 6238 parameters, fixed: they are the ones every authenticator
// app implements, and URI announces them.
const (
	// Digits is the length of a code.
	Digits = 6
	// Period is the length of a step.
	Period = 30 * time.Second
	// SecretSize is the length of a secret made by NewSecret.
	SecretSize = 20

	period = int64(Period / time.Second)
	// minSecret is RFC 4226's floor (R6): Check refuses shorter secrets, so
	// an empty or truncated secret read from storage accepts nothing.
	minSecret = 16
	// maxCodeInput bounds the input Check looks at: a code with spaces is
	// short, anything longer is refused before it is copied.
	maxCodeInput = 32
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a new random secret of SecretSize bytes. The caller
// seals it before it stores it. The error is internal: the system's random
// source failed.
func NewSecret() ([]byte, error) {
	s := make([]byte, SecretSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("totp: read random secret: %w", err)
	}
	return s, nil
}

// Base32 returns secret in the form authenticator apps take when typed in:
// RFC 4648 base32, upper case, without padding.
func Base32(secret []byte) string {
	return b32.EncodeToString(secret)
}

// URI returns the otpauth:// link to show as a QR code when a user enrolls:
//
//	otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
//
// Issuer and account are percent-encoded (RFC 3986: a space is %20, which
// apps show as a space, where "+" would be shown as is). Neither should
// contain a colon: it is encoded in the label, but apps split the decoded
// label at the first one; the issuer parameter, which apps prefer, is
// always exact.
func URI(issuer, account string, secret []byte) string {
	var b strings.Builder
	b.WriteString("otpauth://totp/")
	b.WriteString(escape(issuer))
	b.WriteByte(':')
	b.WriteString(escape(account))
	b.WriteString("?secret=")
	b.WriteString(Base32(secret))
	b.WriteString("&issuer=")
	b.WriteString(escape(issuer))
	fmt.Fprintf(&b, "&algorithm=SHA1&digits=%d&period=%d", Digits, period)
	return b.String()
}

// escape percent-encodes everything but RFC 3986's unreserved characters,
// so that the result is safe in the label and in a query value alike.
// (url.PathEscape leaves "&", "=", "+" and ":" as they are, and
// url.QueryEscape writes a space as "+".)
func escape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Code returns the code an authenticator app shows for secret at time t:
// that of the 30-second step t falls in. The server only checks codes;
// Code is for tests and tools that play the app's part.
func Code(secret []byte, t time.Time) string {
	var c [Digits]byte
	hotp(&c, secret, stepOf(t))
	return string(c[:])
}

// stepOf returns the number of the step t falls in, counting from the Unix
// epoch (step 0). It rounds down, also before the epoch.
func stepOf(t time.Time) int64 {
	s := t.Unix()
	step := s / period
	if s%period < 0 {
		step--
	}
	return step
}

// hotp writes the RFC 4226 HOTP value of secret for counter step into c,
// zero-padded. A step before the epoch is encoded as its two's complement:
// Code gives a value for it (RFC 6238 gives none), Check accepts none.
func hotp(c *[Digits]byte, secret []byte, step int64) {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	var sum [sha1.Size]byte
	mac.Sum(sum[:0])
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	for i := Digits - 1; i >= 0; i-- {
		c[i] = byte('0' + v%10)
		v /= 10
	}
}

// Check reports whether code is secret's code at time now, for a step after
// lastStep, and returns the step it matched. A caller that has not yet
// accepted a code passes 0.
//
// The code of the current step and that of the step before are accepted;
// the step after is not. Spaces in code are ignored ("123 456"); anything
// else that is not exactly six ASCII digits is refused, as is a secret
// shorter than 16 bytes. When ok, the caller must store step (with a
// compare-and-set on lastStep) before it lets the user in, so the code
// cannot be used again; when the code matches both steps, the later one is
// returned. Both candidate codes are always computed and compared in
// constant time.
func Check(secret []byte, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	in, valid := normalizeCode(code)
	if !valid || len(secret) < minSecret {
		return 0, false
	}
	cur := stepOf(now)
	var prevCode, curCode [Digits]byte
	hotp(&prevCode, secret, cur-1)
	hotp(&curCode, secret, cur)
	prevOK := subtle.ConstantTimeCompare(in[:], prevCode[:]) == 1 && cur-1 > lastStep && cur-1 >= 0
	curOK := subtle.ConstantTimeCompare(in[:], curCode[:]) == 1 && cur > lastStep && cur >= 0
	switch {
	case curOK:
		return cur, true
	case prevOK:
		return cur - 1, true
	}
	return 0, false
}

// normalizeCode drops spaces from s and returns its six digits, or false
// when what is left is not exactly six ASCII digits.
func normalizeCode(s string) (c [Digits]byte, ok bool) {
	if len(s) > maxCodeInput {
		return c, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ':
			continue
		case ch < '0' || ch > '9' || n == Digits:
			return c, false
		}
		c[n] = ch
		n++
	}
	return c, n == Digits
}
