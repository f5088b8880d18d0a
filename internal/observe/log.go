package observe

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"regexp"
	"strings"
	"unicode"
)

// redacted replaces every value that must not reach a log.
const redacted = "[redacted]"

// NewLogger returns a JSON logger writing to w at the given level, with every
// record passed through NewRedactingHandler.
func NewLogger(w io.Writer, level slog.Level, ipKey []byte) *slog.Logger {
	return slog.New(NewRedactingHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}), ipKey))
}

// NewRedactingHandler wraps inner so that no secret, personal data or raw IP
// address reaches it: see the package documentation for the rules. ipKey is
// the HashIP key (LoadOrCreateIPKey).
func NewRedactingHandler(inner slog.Handler, ipKey []byte) slog.Handler {
	return &redactingHandler{inner: inner, key: ipKey}
}

type redactingHandler struct {
	inner slog.Handler
	key   []byte
	// secretGroup is set once WithGroup opened a group whose name is a secret
	// key ("password", "body", ...): everything inside it is redacted.
	secretGroup bool
}

func (h *redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

func (h *redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	nr := slog.NewRecord(r.Time, r.Level, h.scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		nr.AddAttrs(h.attr(a))
		return true
	})
	return h.inner.Handle(ctx, nr)
}

func (h *redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = h.attr(a)
	}
	return &redactingHandler{inner: h.inner.WithAttrs(out), key: h.key, secretGroup: h.secretGroup}
}

func (h *redactingHandler) WithGroup(name string) slog.Handler {
	return &redactingHandler{
		inner:       h.inner.WithGroup(name),
		key:         h.key,
		secretGroup: h.secretGroup || classifyKey(name) == keySecret,
	}
}

// attr returns a with its value redacted according to its key and content.
func (h *redactingHandler) attr(a slog.Attr) slog.Attr {
	kind := classifyKey(a.Key)
	if h.secretGroup && a.Key != "" {
		kind = keySecret
	}
	if kind == keySecret {
		return slog.String(a.Key, redacted)
	}
	v := a.Value.Resolve()
	if kind == keyIP && v.Kind() != slog.KindGroup {
		return slog.String(a.Key, h.hashIPs(valueText(v)))
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.scrub(v.String()))
	case slog.KindGroup:
		group := v.Group()
		out := make([]slog.Attr, len(group))
		for i, ga := range group {
			out[i] = h.attr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		return slog.Attr{Key: a.Key, Value: h.anyValue(v.Any())}
	default: // numbers, bools, times, durations carry no text
		return slog.Attr{Key: a.Key, Value: v}
	}
}

// anyValue redacts an arbitrary value: errors, Stringers and byte slices by
// their text; anything else through its JSON form, key by key.
func (h *redactingHandler) anyValue(x any) slog.Value {
	switch t := x.(type) {
	case nil:
		return slog.AnyValue(nil)
	case error:
		return slog.StringValue(h.scrub(t.Error()))
	case fmt.Stringer:
		return slog.StringValue(h.scrub(t.String()))
	case []byte:
		return slog.StringValue(h.scrub(string(t)))
	}
	b, err := json.Marshal(x)
	if err != nil {
		return slog.StringValue(h.scrub(fmt.Sprint(x)))
	}
	var generic any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&generic); err != nil {
		return slog.StringValue(h.scrub(string(b)))
	}
	return slog.AnyValue(h.jsonValue(generic))
}

// jsonValue redacts a value decoded from JSON.
func (h *redactingHandler) jsonValue(v any) any {
	switch t := v.(type) {
	case string:
		return h.scrub(t)
	case []any:
		for i := range t {
			t[i] = h.jsonValue(t[i])
		}
		return t
	case map[string]any:
		for k, e := range t {
			switch classifyKey(k) {
			case keySecret:
				t[k] = redacted
			case keyIP:
				t[k] = h.hashIPs(fmt.Sprint(e))
			default:
				t[k] = h.jsonValue(e)
			}
		}
		return t
	default:
		return v
	}
}

// valueText returns the text of a non-group value.
func valueText(v slog.Value) string {
	if v.Kind() == slog.KindAny {
		switch t := v.Any().(type) {
		case error:
			return t.Error()
		case []byte:
			return string(t)
		}
	}
	return v.String()
}

// hashIPs replaces each comma-separated address in s (X-Forwarded-For holds a
// list) by its HashIP pseudonym.
func (h *redactingHandler) hashIPs(s string) string {
	if isHashedIP(s) {
		return s
	}
	if !strings.Contains(s, ",") {
		return HashIP(h.key, s)
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if p = strings.TrimSpace(p); !isHashedIP(p) {
			p = HashIP(h.key, p)
		}
		parts[i] = p
	}
	return strings.Join(parts, ",")
}

// charClass holds what scrub's first pass needs to know of each byte: the
// base64 alphabet of b64Re (cRun) with its letters' case and digits, the
// hex digits of hexRe, and the marks the other patterns need.
var charClass = func() (t [256]uint8) {
	for c := range 256 {
		switch {
		case c >= 'A' && c <= 'Z':
			t[c] = cRun | cUpper
		case c >= 'a' && c <= 'z':
			t[c] = cRun | cLower
		case c >= '0' && c <= '9':
			t[c] = cRun | cDigit | cHex
		case c == '+' || c == '/' || c == '_' || c == '-':
			t[c] = cRun
		case c == '@':
			t[c] = cAt
		case c == '.':
			t[c] = cDot
		case c == ':':
			t[c] = cColon
		case c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r': // \s of bearerRe
			t[c] = cSpace
		}
		if c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' {
			t[c] |= cHex
		}
	}
	return t
}()

// The classes of charClass: bits for the run alphabet, one value each for
// the marks outside it.
const (
	cRun   = 1 << 0
	cUpper = 1 << 1
	cLower = 1 << 2
	cDigit = 1 << 3
	cHex   = 1 << 4
	cAt    = 1 << 5
	cDot   = 2 << 5
	cColon = 3 << 5
	cSpace = 4 << 5 // needs 3 bits: 5, 6, 7
)

// The patterns that scrub masks inside any text. They run only on text that
// contains the characters they need (see scrub), so plain words cost a scan.
var (
	bearerRe = regexp.MustCompile(`(?i)\bbearer\s+[^\s"',;]+|\bbasic\s+[A-Za-z0-9+/=]{8,}`)
	jwtRe    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?`)
	apiKeyRe = regexp.MustCompile(`bwk_[A-Za-z0-9_\-]*`)
	emailRe  = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*`)
	hexRe    = regexp.MustCompile(`[0-9A-Fa-f]{32,}`)
	b64Re    = regexp.MustCompile(`[A-Za-z0-9+/_\-]{32,}={0,2}`)
	ipv4Re   = regexp.MustCompile(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)
	ipv6Re   = regexp.MustCompile(`[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%[0-9A-Za-z]+)?`)
)

// scrub masks secrets, e-mail addresses and IP addresses inside free text.
// One pass over s first notes what the patterns need (an '@', dots,
// colons, long runs of the base64 or hex alphabet, whether such a run looks
// random), so that text that holds nothing to mask, such as a route or a
// request id, costs that pass and no regular expression.
func (h *redactingHandler) scrub(s string) string {
	var at, digit, space, randomRun bool
	var dots, colons, run, hexRun, maxHexRun, upper, lower int
	var runDigit bool
	for i := 0; i <= len(s); i++ {
		var c uint8
		if i < len(s) {
			c = charClass[s[i]]
		}
		if c&cHex != 0 {
			hexRun++
			maxHexRun = max(maxHexRun, hexRun)
		} else {
			hexRun = 0
		}
		if c&cRun != 0 {
			run++
			switch {
			case c&cUpper != 0:
				upper++
			case c&cLower != 0:
				lower++
			case c&cDigit != 0:
				runDigit, digit = true, true
			}
			continue
		}
		// A run ends here (or s does).
		randomRun = randomRun || run >= 32 && looksRandomCounts(upper, lower, runDigit)
		run, upper, lower, runDigit = 0, 0, 0, false
		switch c {
		case cAt:
			at = true
		case cDot:
			dots++
		case cColon:
			colons++
		case cSpace:
			space = true
		}
	}
	if space && containsFold(s, "bearer", "basic") {
		s = bearerRe.ReplaceAllStringFunc(s, func(m string) string {
			return m[:strings.IndexFunc(m, unicode.IsSpace)] + " " + redacted
		})
	}
	if strings.Contains(s, "eyJ") {
		s = jwtRe.ReplaceAllLiteralString(s, redacted)
	}
	if strings.Contains(s, "bwk_") {
		s = apiKeyRe.ReplaceAllLiteralString(s, redacted)
	}
	if at {
		s = emailRe.ReplaceAllLiteralString(s, redacted)
	}
	// The masks above only ever shorten or split runs, and a run that does
	// not look random has no part that does: without a long hex run or a
	// random-looking base64 run in s, the two patterns below find nothing.
	if maxHexRun >= 32 {
		s = hexRe.ReplaceAllLiteralString(s, redacted)
	}
	if maxHexRun >= 32 || randomRun {
		s = b64Re.ReplaceAllStringFunc(s, func(m string) string {
			if looksRandom(m) {
				return redacted
			}
			return m
		})
	}
	if digit && dots >= 3 {
		s = ipv4Re.ReplaceAllStringFunc(s, h.hashIfAddr)
	}
	if colons >= 2 {
		s = ipv6Re.ReplaceAllStringFunc(s, h.hashIfAddr)
	}
	return s
}

// hashIfAddr replaces the address in m by its pseudonym. The IPv6 pattern
// also takes in colons next to the address ("lookup ::1: refused"), so those
// are tried off both ends.
func (h *redactingHandler) hashIfAddr(m string) string {
	for lead := 0; lead <= 1 && lead < len(m); lead++ {
		if lead == 1 && m[0] != ':' {
			break
		}
		for end := len(m); end > lead && len(m)-end <= 2; end-- {
			if _, err := netip.ParseAddr(m[lead:end]); err == nil {
				return m[:lead] + HashIP(h.key, m[lead:end]) + m[end:]
			}
			if m[end-1] != ':' {
				break
			}
		}
	}
	return m
}

// looksRandom reports whether a long base64-alphabet run looks like a secret
// rather than a word, a path or a UUID: upper case with digits (base64,
// base32), or many upper and many lower case letters (base64 that happens to
// hold no digit). Lower case with digits (UUIDs, file names) is kept; pure hex
// was already caught by hexRe.
func looksRandom(m string) bool {
	var upper, lower int
	var digit bool
	for i := 0; i < len(m); i++ {
		c := m[i]
		switch {
		case c >= 'A' && c <= 'Z':
			upper++
		case c >= 'a' && c <= 'z':
			lower++
		case c >= '0' && c <= '9':
			digit = true
		}
	}
	return looksRandomCounts(upper, lower, digit)
}

func looksRandomCounts(upper, lower int, digit bool) bool {
	return upper > 0 && digit || upper >= 8 && lower >= 8
}

// containsFold reports whether s contains any of the lower-case ASCII words,
// ignoring case. Only positions that hold a word's first letter, in either
// case, are compared.
func containsFold(s string, words ...string) bool {
	for _, w := range words {
		first, firstUpper := w[0], w[0]-'a'+'A'
		for i := 0; i+len(w) <= len(s); i++ {
			if (s[i] == first || s[i] == firstUpper) && strings.EqualFold(s[i:i+len(w)], w) {
				return true
			}
		}
	}
	return false
}

type keyKind uint8

const (
	keyPlain keyKind = iota
	keySecret
	keyIP
)

// secretKeys are attribute keys whose value is never logged, after lower-casing
// and turning '-' and '.' into '_'.
var secretKeys = map[string]bool{
	"password": true, "passwd": true, "pass": true, "pwd": true, "passphrase": true,
	"secret": true, "token": true, "access_token": true, "refresh_token": true, "id_token": true,
	"mfa_token": true, "otp": true, "totp": true, "recovery_code": true, "recovery_codes": true,
	"authorization": true, "proxy_authorization": true, "cookie": true, "set_cookie": true,
	"api_key": true, "apikey": true, "key": true, "jwt": true, "bearer": true, "credential": true,
	"credentials": true, "session": true, "signature": true,
	"email": true, "name": true, "first_name": true, "last_name": true, "full_name": true,
	"display_name": true, "username": true, "user_name": true, "phone": true, "phone_number": true,
	"mobile": true, "address": true, "street": true, "postal_code": true, "birthdate": true, "dob": true,
	"ssn": true, "body": true, "content": true, "contents": true, "record": true, "records": true,
	"data": true, "value": true, "values": true, "fields": true, "payload": true, "query": true,
	"raw_query": true, "url": true, "uri": true, "path": true, "raw_path": true, "request_uri": true,
	"referer": true, "referrer": true, "form": true, "params": true, "headers": true, "header": true,
}

// secretParts make a key secret wherever they appear in it.
var secretParts = []string{"password", "passwd", "secret", "token", "api_key", "apikey", "cookie",
	"authorization", "email", "credential", "private_key"}

var ipKeys = map[string]bool{
	"ip": true, "ip_address": true, "remote_addr": true, "remote_ip": true, "client_ip": true,
	"client_addr": true, "x_forwarded_for": true, "forwarded_for": true, "x_real_ip": true,
	"peer_addr": true,
}

func classifyKey(k string) keyKind {
	if k == "" {
		return keyPlain
	}
	k = strings.ToLower(k)
	if strings.ContainsAny(k, "-. ") {
		k = strings.NewReplacer("-", "_", ".", "_", " ", "_").Replace(k)
	}
	if secretKeys[k] {
		return keySecret
	}
	if ipKeys[k] {
		return keyIP
	}
	for _, p := range secretParts {
		if strings.Contains(k, p) {
			return keySecret
		}
	}
	if strings.HasSuffix(k, "_key") {
		return keySecret
	}
	return keyPlain
}

// SecretKey reports whether a field named k holds a secret or personal
// data by the rules of the log (password, token, email, body, ...).
func SecretKey(k string) bool { return classifyKey(k) == keySecret }

// ScrubText masks the secrets and e-mail addresses found inside free text
// as log lines are scrubbed, and replaces IP addresses by their HashIP
// pseudonym under ipKey.
func ScrubText(s string, ipKey []byte) string { return (&redactingHandler{key: ipKey}).scrub(s) }
