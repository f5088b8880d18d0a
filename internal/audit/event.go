package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"bulwark/internal/apperr"
	"bulwark/internal/observe"
)

// The actor types.
const (
	ActorUser     = "user"
	ActorAPIKey   = "api_key"
	ActorOperator = "operator"
	ActorSystem   = "system"
)

// The outcomes.
const (
	Success = "success"
	Failure = "failure"
	Denied  = "denied"
)

// ControlLog is the log id of the control-plane log (operator, org
// lifecycle and key events); an org's log has the org's id.
const ControlLog = "control"

// Actor is who did it.
type Actor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Resource is what it was done to.
type Resource struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Event is one entry of an audit log. Seq, ID, Time and the hashes are set
// by Append.
type Event struct {
	Seq       int64             `json:"seq"`
	ID        string            `json:"id"`
	Time      time.Time         `json:"time"`
	Actor     Actor             `json:"actor"`
	Action    string            `json:"action"`
	Resource  Resource          `json:"resource"`
	Outcome   string            `json:"outcome"`
	IP        string            `json:"ip"`
	UserAgent string            `json:"user_agent"`
	RequestID string            `json:"request_id"`
	Details   map[string]string `json:"details"`

	hash []byte
}

// Hash returns the event's chain hash (set by Append and by reads).
func (e Event) Hash() []byte { return e.hash }

// Limits of an event's fields.
const (
	maxID         = 200
	maxUserAgent  = 512
	maxDetailKeys = 32
	maxDetailVal  = 512
	maxDetails    = 4096
)

// Names: an action is two to six dotted lower-case names
// ([a-z][a-z0-9_]*), a resource type a name of up to 40 bytes, a detail
// key one of up to 64. Checked by hand: every append checks them, and
// inside the one writer of a SQLite database (the regular expressions
// they were took a third of normalize's time).
const (
	maxType      = 40
	maxDetailKey = 64
)

// isName reports whether s is [a-z][a-z0-9_]* of at most max bytes (any
// length when max is 0).
func isName(s string, max int) bool {
	if s == "" || (max > 0 && len(s) > max) || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// isAction reports whether s is two to six names joined by dots.
func isAction(s string) bool {
	n := 0
	for part := range strings.SplitSeq(s, ".") {
		if n++; n > 6 || !isName(part, 0) {
			return false
		}
	}
	return n >= 2
}

const redacted = "[redacted]"

// prepareEvent checks and normalizes e, gives it an id and the time now,
// and returns its encodeFields: all of an append's work that does not
// need its place in the log.
func prepareEvent(e *Event, ipKey []byte, now time.Time) ([]byte, error) {
	details, err := e.normalize(ipKey)
	if err != nil {
		return nil, err
	}
	id, err := eventIDs.next(now)
	if err != nil {
		return nil, err
	}
	e.ID, e.Time = id, now
	return encodeFields(nil, e, details), nil
}

// normalize checks e and makes it safe to store: details under a secret
// or personal-data name are redacted, secrets and e-mail addresses inside
// any detail are masked, text is bounded. It returns the details'
// canonical form (canonicalDetails), or invalid naming the first bad
// field; nothing of the event is stored then.
func (e *Event) normalize(ipKey []byte) ([]byte, error) {
	bad := func(field, code, format string, args ...any) ([]byte, error) {
		return nil, apperr.WithFields(fmt.Sprintf(format, args...), apperr.FieldError{Field: field, Code: code})
	}
	switch e.Actor.Type {
	case ActorUser, ActorAPIKey, ActorOperator, ActorSystem:
	default:
		return bad("actor.type", "invalid", "audit: actor type %q is not user, api_key, operator or system", e.Actor.Type)
	}
	if !isAction(e.Action) {
		return bad("action", "invalid", "audit: action %q is not a dotted verb such as record.created", e.Action)
	}
	switch e.Outcome {
	case Success, Failure, Denied:
	default:
		return bad("outcome", "invalid", "audit: outcome %q is not success, failure or denied", e.Outcome)
	}
	if e.Resource.Type != "" && !isName(e.Resource.Type, maxType) {
		return bad("resource.type", "invalid", "audit: resource type %q is not a lower-case name", e.Resource.Type)
	}
	for _, fv := range [...][2]string{{"actor.id", e.Actor.ID}, {"resource.id", e.Resource.ID}, {"request_id", e.RequestID}} {
		f, v := fv[0], fv[1]
		if len(v) > maxID || !printable(v) {
			return bad(f, "invalid", "audit: %s is longer than %d bytes or not printable text", f, maxID)
		}
	}
	if e.IP != "" {
		a, err := netip.ParseAddr(e.IP)
		if err != nil {
			return bad("ip", "invalid", "audit: %q is not an IP address", e.IP)
		}
		if !a.Is4() { // an IPv4 address parses only from its one text form
			e.IP = a.Unmap().String()
		}
	}
	if !printableASCII(e.UserAgent) {
		e.UserAgent = strings.Map(func(r rune) rune {
			if isControl(r) {
				return -1
			}
			return r
		}, strings.ToValidUTF8(e.UserAgent, ""))
	}
	e.UserAgent = clip(e.UserAgent, maxUserAgent)
	if len(e.Details) > maxDetailKeys {
		return bad("details", "too_large", "audit: more than %d details", maxDetailKeys)
	}
	// The caller's map is left as it is: a copy is made when a value
	// changes.
	var clean map[string]string
	for k, v := range e.Details {
		if !isName(k, maxDetailKey) {
			return bad("details", "invalid", "audit: detail key %q is not a lower-case name", k)
		}
		w := redacted
		if !secretKey(k) {
			w = clip(observe.ScrubText(strings.ToValidUTF8(v, ""), ipKey), maxDetailVal)
		}
		if w == v {
			continue
		}
		if clean == nil {
			clean = maps.Clone(e.Details)
		}
		clean[k] = w
	}
	if clean != nil {
		e.Details = clean
	}
	details, err := canonicalDetails(e.Details)
	if err != nil {
		return nil, fmt.Errorf("audit: details: %w", err)
	}
	if len(details) > maxDetails {
		return bad("details", "too_large", "audit: details are larger than %d bytes", maxDetails)
	}
	return details, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// printableASCII reports whether s is printable ASCII only, as most of an
// event's text is: it then needs no cleaning.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	return printableASCII(s) || utf8.ValidString(s) && !strings.ContainsFunc(s, isControl)
}

// secretKeys caches observe.SecretKey for detail keys, which are few
// (named in code) and asked for on every append: a map replaced, never
// changed, when a key is added (reads take no lock), of at most
// maxSecretKeys keys.
var (
	secretKeys   atomic.Pointer[map[string]bool]
	secretKeysMu sync.Mutex
)

const maxSecretKeys = 4096

func secretKey(k string) bool {
	if m := secretKeys.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	secret := observe.SecretKey(k)
	secretKeysMu.Lock()
	defer secretKeysMu.Unlock()
	var m map[string]bool
	if old := secretKeys.Load(); old != nil {
		m = *old
	}
	if len(m) < maxSecretKeys {
		m = maps.Clone(m)
		if m == nil {
			m = map[string]bool{}
		}
		m[k] = secret
		secretKeys.Store(&m)
	}
	return secret
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// canonicalDetails is the stored and hashed form of details: JSON with
// keys sorted, "{}" when there are none; byte for byte what
// encoding/json gives for the map (it sorts map keys the same way), built
// by hand because every append runs it, on SQLite inside the one writer:
// json.Marshal's reflection took a third of normalize's time.
func canonicalDetails(d map[string]string) ([]byte, error) {
	if len(d) == 0 {
		return []byte("{}"), nil
	}
	var small [maxDetailKeys]string
	keys, n := small[:0], 2
	for k, v := range d {
		keys = append(keys, k)
		n += len(k) + len(v) + 6
	}
	slices.Sort(keys)
	b := make([]byte, 0, n)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, d[k])
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as encoding/json encodes a string: as it is,
// quoted, when it is printable ASCII that needs no escape (JSON's or
// encoding/json's HTML-safe <, > and &); through encoding/json otherwise.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil { // a string always encodes
				panic(err)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// genesis is the previous hash of a log's first event: bound to the log,
// so the start of one log cannot pass for another's.
func genesis(logID string) []byte {
	h := sha256.New()
	h.Write(lp(nil, "bulwark/audit/genesis/v1"))
	h.Write(lp(nil, logID))
	return h.Sum(nil)
}

// timeLayout is the one textual form of an event time that is hashed.
const timeLayout = "2006-01-02T15:04:05.000000Z"

// timeText is an event time in its hashed form.
func timeText(t time.Time) string { return t.UTC().Format(timeLayout) }

// eventFields is the number of text fields of an event that are hashed
// between its seq and its details.
const eventFields = 11

func lp(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func lpb(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}
