package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
)

// A log's events are stored in segments (audit_segments): one row holds
// the events of one commit of the log, up to segmentMax, in seq order,
// each as a record:
//
//	u32 length of the body | body | hash (32 bytes)
//
// where the body is the part of the event's hash input (hashInput) after
// the log id and the previous hash: its seq (u64), its eleven text fields
// and its details, each length-prefixed. The body is what the chain hash
// covers, so writing a record costs no encoding of its own, and a record
// is checked by hashing the log id, the previous event's hash and the
// body. One row per commit instead of one per event, and no index entry
// per event (filters are served by the block blooms, bloom.go): that is
// what an event costs its transaction (see docs/architecture.md, "Write
// cost").

// segmentMax is the most events one segment holds.
const segmentMax = 128

// eventDomain starts every event's hash input.
const eventDomain = "bulwark/audit/event/v1"

// hashPrefix appends the part of an event's hash input before its body.
func hashPrefix(b []byte, logID string, prev []byte) []byte {
	b = lp(b, eventDomain)
	b = lp(b, logID)
	return lpb(b, prev)
}

// hashPrefixLen is len(hashPrefix(nil, logID, prev)).
func hashPrefixLen(logID string, prev []byte) int {
	return 12 + len(eventDomain) + len(logID) + len(prev)
}

// appendRecord appends the record of an event with body and hash.
func appendRecord(dst, body, hash []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = append(dst, body...)
	return append(dst, hash...)
}

// errRecord is a segment that does not parse.
var errRecord = errors.New("malformed event record")

// record is one record of a segment, its bytes still in the segment.
type record struct {
	seq  int64
	body []byte
	hash []byte
}

// nextRecord parses the record at the start of b and returns it and the
// rest of b.
func nextRecord(b []byte) (record, []byte, error) {
	if len(b) < 4 {
		return record{}, nil, errRecord
	}
	n := int(binary.BigEndian.Uint32(b))
	b = b[4:]
	if n < 8 || n > len(b)-sha256.Size {
		return record{}, nil, errRecord
	}
	r := record{seq: int64(binary.BigEndian.Uint64(b)), body: b[:n], hash: b[n : n+sha256.Size]}
	return r, b[n+sha256.Size:], nil
}

// records calls fn for each record of segment seg, in order, and stops
// early when fn returns false.
func records(seg []byte, fn func(r record) bool) error {
	for len(seg) > 0 {
		r, rest, err := nextRecord(seg)
		if err != nil {
			return err
		}
		if !fn(r) {
			return nil
		}
		seg = rest
	}
	return nil
}

// sumOf is the chain hash of a record's body after prev, built in buf.
func sumOf(buf []byte, logID string, prev, body []byte) ([sha256.Size]byte, []byte) {
	buf = hashPrefix(buf[:0], logID, prev)
	buf = append(buf, body...)
	return sha256.Sum256(buf), buf
}

// Indexes of fields, in the body's (hashInput's) order.
const (
	fID = iota
	fTime
	fActorType
	fActorID
	fAction
	fResourceType
	fResourceID
	fOutcome
	fIP
	fUserAgent
	fRequestID
)

// fields is a record's body split into its parts, still in the segment.
type fields struct {
	seq     int64
	f       [eventFields][]byte
	details []byte
}

// parse splits body into f.
func (f *fields) parse(body []byte) error {
	if len(body) < 8 {
		return errRecord
	}
	f.seq = int64(binary.BigEndian.Uint64(body))
	return f.parseFields(body[8:])
}

// parseFields splits an event's fields (encodeFields, a record's body
// after its seq) into f, leaving f.seq as it is.
func (f *fields) parseFields(b []byte) error {
	take := func() ([]byte, bool) {
		if len(b) < 4 {
			return nil, false
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, false
		}
		v := b[4 : 4+n]
		b = b[4+n:]
		return v, true
	}
	for i := range f.f {
		v, ok := take()
		if !ok {
			return errRecord
		}
		f.f[i] = v
	}
	d, ok := take()
	if !ok || len(b) != 0 {
		return errRecord
	}
	f.details = d
	return nil
}

// eventTime parses an event time in its hashed form (timeText).
func eventTime(b []byte) (time.Time, error) {
	if len(b) != len(timeLayout) {
		return time.Time{}, errRecord
	}
	t, err := time.Parse(timeLayout, string(b))
	if err != nil {
		return time.Time{}, errRecord
	}
	return t, nil
}

// event fills e from f (strings copied out of the segment) and hash.
func (f *fields) event(e *rawEvent, hash []byte) error {
	t, err := eventTime(f.f[fTime])
	if err != nil {
		return err
	}
	*e = rawEvent{Event: Event{Seq: f.seq, ID: string(f.f[fID]), Time: t,
		Actor:     Actor{Type: string(f.f[fActorType]), ID: string(f.f[fActorID])},
		Action:    string(f.f[fAction]),
		Resource:  Resource{Type: string(f.f[fResourceType]), ID: string(f.f[fResourceID])},
		Outcome:   string(f.f[fOutcome]),
		IP:        string(f.f[fIP]),
		UserAgent: string(f.f[fUserAgent]),
		RequestID: string(f.f[fRequestID]),
		hash:      bytes.Clone(hash),
	}, details: bytes.Clone(f.details)}
	return nil
}

// matcher is a Filter as tested against a record's fields.
type matcher struct {
	actorType, actorID     string
	byActorType            bool
	action                 string
	actionPrefix           bool
	resourceType, resource string
	byResourceID           bool
	outcome                string
	since, until           time.Time
}

// check validates f, as where did: an action prefix must be a valid
// prefix and an outcome one of the three.
func (f Filter) check() error {
	if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok && !isAction(prefix+".x") && !isName(prefix, maxType) {
		return invalidFilter("invalid filter", "action")
	}
	switch f.Outcome {
	case "", Success, Failure, Denied:
		return nil
	}
	return invalidFilter("invalid filter: outcome is success, failure or denied", "outcome")
}

func (f Filter) matcher() matcher {
	var m matcher
	if typ, id, ok := strings.Cut(f.Actor, ":"); ok {
		m.actorType, m.actorID, m.byActorType = typ, id, true
	} else {
		m.actorID = f.Actor
	}
	m.action = f.Action
	if prefix, ok := strings.CutSuffix(f.Action, ".*"); ok {
		m.action, m.actionPrefix = prefix+".", true
	}
	if typ, id, ok := strings.Cut(f.Resource, ":"); ok {
		m.resourceType, m.resource, m.byResourceID = typ, id, true
	} else {
		m.resourceType = f.Resource
	}
	m.outcome = f.Outcome
	m.since, m.until = f.Since, f.Until
	return m
}

// match reports whether the event of f matches. A time that does not
// parse never matches (Verify reports the event).
func (m *matcher) match(f *fields) bool {
	if m.actorID != "" || m.byActorType {
		if string(f.f[fActorID]) != m.actorID || (m.byActorType && string(f.f[fActorType]) != m.actorType) {
			return false
		}
	}
	if m.action != "" {
		if m.actionPrefix {
			if !bytes.HasPrefix(f.f[fAction], []byte(m.action)) {
				return false
			}
		} else if string(f.f[fAction]) != m.action {
			return false
		}
	}
	if m.resourceType != "" || m.byResourceID {
		if string(f.f[fResourceType]) != m.resourceType || (m.byResourceID && string(f.f[fResourceID]) != m.resource) {
			return false
		}
	}
	if m.outcome != "" && string(f.f[fOutcome]) != m.outcome {
		return false
	}
	if !m.since.IsZero() || !m.until.IsZero() {
		t, err := eventTime(f.f[fTime])
		if err != nil || (!m.since.IsZero() && t.Before(m.since)) || (!m.until.IsZero() && !t.Before(m.until)) {
			return false
		}
	}
	return true
}

func segmentError(seqStart int64, err error) error {
	return fmt.Errorf("audit: the segment at seq %d: %w", seqStart, err)
}
