package password

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"bulwark/internal/apperr"
)

// Policy is an org's rules for new passwords. Lengths count Unicode code
// points; MinLength ≤ 0 sets no minimum and MaxLength ≤ 0 no maximum.
// MaxAgeDays > 0 makes passwords expire (the caller enforces it at login;
// Check does not see ages). History is how many previous passwords may not
// be reused.
type Policy struct {
	MinLength, MaxLength int
	RequireUpper         bool
	RequireLower         bool
	RequireDigit         bool
	RequireSymbol        bool
	MaxAgeDays           int
	History              int
	ForbidCommon         bool
}

// DefaultPolicy is OWASP ASVS 4.0.3 section 2.1: 12 to 128 characters
// (2.1.1, 2.1.2), common passwords refused (2.1.7), no composition rules
// (2.1.9), no expiry (2.1.10), and the last 5 passwords not reused.
var DefaultPolicy = Policy{MinLength: 12, MaxLength: 128, History: 5, ForbidCommon: true}

// Deviations returns a sentence for each setting of p that departs from
// ASVS 4.0.3 section 2.1, for an admin screen that shows what an org chose;
// none for DefaultPolicy. History is not in ASVS and is not listed.
func Deviations(p Policy) []string {
	var out []string
	if p.MinLength < 12 {
		out = append(out, fmt.Sprintf("Passwords may be shorter than 12 characters (minimum %d; ASVS 2.1.1).", max(p.MinLength, 0)))
	}
	switch {
	case p.MaxLength <= 0:
		out = append(out, "Passwords have no maximum length (ASVS 2.1.2 refuses more than 128 characters).")
	case p.MaxLength < 64:
		out = append(out, fmt.Sprintf("Passwords of 64 characters are refused (maximum %d; ASVS 2.1.2).", p.MaxLength))
	case p.MaxLength > 128:
		out = append(out, fmt.Sprintf("Passwords may be longer than 128 characters (maximum %d; ASVS 2.1.2).", p.MaxLength))
	}
	if !p.ForbidCommon {
		out = append(out, "Common and breached passwords are allowed (ASVS 2.1.7).")
	}
	for _, r := range []struct {
		on   bool
		what string
	}{
		{p.RequireUpper, "an upper-case letter"},
		{p.RequireLower, "a lower-case letter"},
		{p.RequireDigit, "a digit"},
		{p.RequireSymbol, "a symbol"},
	} {
		if r.on {
			out = append(out, fmt.Sprintf("Passwords must contain %s (ASVS 2.1.9: no composition rules).", r.what))
		}
	}
	if p.MaxAgeDays > 0 {
		out = append(out, fmt.Sprintf("Passwords expire after %d days (ASVS 2.1.10: no periodic rotation).", p.MaxAgeDays))
	}
	return out
}

// Context is what Check knows of the account a password is for.
type Context struct {
	Email   string
	OrgName string
	// Previous holds the encoded hashes of the account's previous
	// passwords, most recent first; Check looks at the first History.
	Previous []string
}

// Field error codes of Check, on field "password".
const (
	CodeInvalidEncoding = "invalid_encoding"
	CodeTooShort        = "too_short"
	CodeTooLong         = "too_long"
	CodeCommon          = "common"
	CodeContainsEmail   = "contains_email"
	CodeContainsOrgName = "contains_org_name"
	CodeReused          = "reused"
	CodeMissingUpper    = "missing_upper"
	CodeMissingLower    = "missing_lower"
	CodeMissingDigit    = "missing_digit"
	CodeMissingSymbol   = "missing_symbol"
)

// Check returns every rule of p that pw breaks, as field errors on
// "password", in a fixed order; none when pw may be used. A pw that is not
// valid UTF-8 breaks only invalid_encoding: no other rule can be judged.
// Messages never repeat the password, the email or the org name.
//
// The email rule refuses a password that contains the local part of
// c.Email (before the last @), ignoring case, when that part has at least
// 3 characters; the org rule likewise for c.OrgName, ignoring case and
// white space in both. A symbol is any character that is neither a letter
// nor a digit (a space counts).
//
// Cost: the reuse rule verifies pw against up to p.History hashes of
// c.Previous, in the caller's goroutine and outside any Pool: History times
// one Verify (about 5 × 30 ms of one core with DefaultParams). Callers run
// Check only on a password change or reset, after the user has
// authenticated. A previous hash that cannot be used is skipped.
func (p Policy) Check(pw string, c Context) []apperr.FieldError {
	if !utf8.ValidString(pw) {
		return []apperr.FieldError{{Field: "password", Code: CodeInvalidEncoding, Message: "The password must be valid text (UTF-8)."}}
	}
	var out []apperr.FieldError
	add := func(code, msg string) {
		out = append(out, apperr.FieldError{Field: "password", Code: code, Message: msg})
	}
	n := utf8.RuneCountInString(pw)
	if p.MinLength > 0 && n < p.MinLength {
		add(CodeTooShort, fmt.Sprintf("Use at least %d characters.", p.MinLength))
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		add(CodeTooLong, fmt.Sprintf("Use at most %d characters.", p.MaxLength))
	}
	if p.ForbidCommon && IsCommon(pw) {
		add(CodeCommon, "This password is too common: it is on lists that attackers try first.")
	}
	lower := strings.ToLower(pw)
	if local := emailLocalPart(c.Email); utf8.RuneCountInString(local) >= 3 && strings.Contains(lower, local) {
		add(CodeContainsEmail, "Do not use your email address in your password.")
	}
	if org := squeeze(c.OrgName); utf8.RuneCountInString(org) >= 3 && strings.Contains(squeeze(pw), org) {
		add(CodeContainsOrgName, "Do not use your organisation's name in your password.")
	}
	if p.reused(pw, c.Previous) {
		add(CodeReused, fmt.Sprintf("Choose a password you have not used for your last %d passwords.", p.History))
	}
	var upper, lowerCase, digit, symbol bool
	for _, r := range pw {
		switch {
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsLower(r):
			lowerCase = true
		}
		switch {
		case unicode.IsDigit(r):
			digit = true
		case !unicode.IsLetter(r) && !unicode.IsNumber(r):
			symbol = true
		}
	}
	if p.RequireUpper && !upper {
		add(CodeMissingUpper, "Include an upper-case letter.")
	}
	if p.RequireLower && !lowerCase {
		add(CodeMissingLower, "Include a lower-case letter.")
	}
	if p.RequireDigit && !digit {
		add(CodeMissingDigit, "Include a digit.")
	}
	if p.RequireSymbol && !symbol {
		add(CodeMissingSymbol, "Include a symbol (a character that is not a letter or a digit).")
	}
	return out
}

// reused reports whether pw is one of the first p.History hashes of prev.
func (p Policy) reused(pw string, prev []string) bool {
	for i, h := range prev {
		if i >= p.History {
			break
		}
		if ok, _, err := Verify(h, pw, DefaultParams); err == nil && ok {
			return true
		}
	}
	return false
}

// emailLocalPart returns the lower-cased part of email before its last @
// (all of it when there is none), trimmed of white space.
func emailLocalPart(email string) string {
	email = strings.TrimSpace(email)
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		email = email[:i]
	}
	return strings.ToLower(email)
}

// squeeze lower-cases s and drops its white space.
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}
